/**
 * Keeps a TLS server's certificate current without a restart (and without dropping streams in flight): renewals
 * by certbot, cert-manager or `ensureDevCertificate` take effect for the next handshake.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { unwatchFile, watchFile } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { Server as TlsServer } from 'node:tls';
import { TLS_POLICY } from './policy.js';

// Polling rather than fs.watch: it sees atomic renames and Kubernetes' symlink swaps of mounted secrets, works
// on network filesystems, and two stat calls a second cost nothing.
export const CERT_POLL_INTERVAL_MS = 1_000; // 1 second
// Renewal tools write the key and the certificate one after the other; wait for both before reading.
export const CERT_RELOAD_DEBOUNCE_MS = 250; // 0.25 seconds

export interface CertificateFiles {
  certFile: string;
  keyFile: string;
}

/** The part of a pino/Fastify logger this module uses. */
export interface CertificateLog {
  info(message: string): void;
  error(message: string): void;
}

export interface CertificateWatcher {
  /** Reads the pair now and installs it if valid; resolves true when the server now uses it. */
  reload(): Promise<boolean>;
  /** Stops polling and listening for SIGHUP. */
  close(): void;
}

export interface WatchOptions {
  intervalMs?: number;
  debounceMs?: number;
}

/**
 * Reloads `server`'s certificate when either file changes and on SIGHUP. A pair that cannot be read, does not
 * parse or does not match is logged and ignored, so the server keeps serving the last good certificate.
 */
export function watchCertificate(
  server: Pick<TlsServer, 'setSecureContext'>,
  files: CertificateFiles,
  log: CertificateLog,
  options: WatchOptions = {},
): CertificateWatcher {
  const intervalMs = options.intervalMs ?? CERT_POLL_INTERVAL_MS;
  const debounceMs = options.debounceMs ?? CERT_RELOAD_DEBOUNCE_MS;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  // Reloads run one at a time so that a slow read cannot install an older pair over a newer one.
  let queue: Promise<boolean> = Promise.resolve(true);

  async function load(): Promise<boolean> {
    try {
      const [cert, key] = await Promise.all([readFile(files.certFile), readFile(files.keyFile)]);
      const x509 = new X509Certificate(cert);
      if (!x509.checkPrivateKey(createPrivateKey(key))) {
        throw new Error(`${files.keyFile} is not the key of ${files.certFile}`);
      }
      server.setSecureContext({ ...TLS_POLICY, cert, key });
      log.info(`TLS certificate reloaded from ${files.certFile} (valid until ${x509.validTo})`);
      return true;
    } catch (err) {
      log.error(`TLS certificate not reloaded, keeping the current one: ${(err as Error).message}`);
      return false;
    }
  }

  function reload(): Promise<boolean> {
    queue = queue.then(load);
    return queue;
  }

  function schedule(): void {
    if (closed) return;
    clearTimeout(timer);
    timer = setTimeout(() => void reload(), debounceMs);
    timer.unref();
  }

  const onChange = (
    current: { mtimeMs: number; ino: number },
    previous: { mtimeMs: number; ino: number },
  ) => {
    // watchFile also fires on atime-only updates; only content or inode changes matter.
    if (current.mtimeMs !== previous.mtimeMs || current.ino !== previous.ino) schedule();
  };
  // A combined PEM may name one file twice; watch it once.
  const watched = [...new Set([files.certFile, files.keyFile])];
  for (const file of watched) {
    // persistent: false — watching a certificate must not keep the process alive on shutdown.
    watchFile(file, { interval: intervalMs, persistent: false }, onChange);
  }
  const onHangup = () => {
    log.info('SIGHUP: reloading the TLS certificate');
    void reload();
  };
  process.on('SIGHUP', onHangup);

  return {
    reload,
    close() {
      if (closed) return;
      closed = true;
      clearTimeout(timer);
      for (const file of watched) unwatchFile(file, onChange);
      process.off('SIGHUP', onHangup);
    },
  };
}
