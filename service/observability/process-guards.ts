/**
 * The last line of defence against a promise rejection nothing handled: Node's default is to exit the process,
 * which would drop every stream in flight for what is usually a failed bookkeeping call. It is logged (with
 * its stack: it is a bug to fix where it happens) and counted, and the server keeps serving. This is never the
 * fix for a known failure path: those handle their own errors (see QuotaManager's release/recordTokens).
 */
import type { Counter } from 'prom-client';

export interface RejectionLog {
  error(obj: Record<string, unknown>, msg: string): void;
}

/** Installs the process-wide handler; the returned function removes it (at shutdown). */
export function logUnhandledRejections(log: RejectionLog, counter?: Counter): () => void {
  const onRejection = (reason: unknown) => {
    counter?.inc();
    log.error({ err: reason }, 'unhandled promise rejection (a bug): logged, and the server keeps serving');
  };
  process.on('unhandledRejection', onRejection);
  return () => {
    process.off('unhandledRejection', onRejection);
  };
}
