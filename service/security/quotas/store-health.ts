/**
 * Whether the quota store answers, as the rest of the service needs to know it: `/ready` turns 503 while it
 * does not, every failed store call is counted (by operation), and an outage is reported as two events, its
 * start and its end, however many requests and reconnect attempts fail in between. Logging one line per
 * failed request would flood the log exactly when an operator needs to read it.
 */

/** What the store was asked to do when it failed (the metric's label). */
export type StoreOperation = 'admit' | 'release' | 'record_tokens' | 'renew' | 'connection';

export interface StoreHealthEvents {
  /** Every failure, outage or not (a metric). */
  onFailure?: (operation: StoreOperation, err: unknown) => void;
  /** The first failure of an outage. */
  onOutage?: (operation: StoreOperation, err: unknown) => void;
  /** The store answered again; `failures` counts the failures since onOutage, that one included. */
  onRecovery?: (outageMs: number, failures: number) => void;
}

export class StoreHealth {
  readonly #events: StoreHealthEvents;
  readonly #now: () => number;
  #outage: { since: number; failures: number } | undefined;

  constructor(events: StoreHealthEvents = {}, now: () => number = () => performance.now()) {
    this.#events = events;
    this.#now = now;
  }

  /** False from a failure until the store answers again. */
  get available(): boolean {
    return this.#outage === undefined;
  }

  failed(operation: StoreOperation, err: unknown): void {
    this.#events.onFailure?.(operation, err);
    if (this.#outage) {
      this.#outage.failures++;
      return;
    }
    this.#outage = { since: this.#now(), failures: 1 };
    this.#events.onOutage?.(operation, err);
  }

  /** The store answered (a command succeeded, or the connection is ready again). */
  succeeded(): void {
    const outage = this.#outage;
    if (!outage) return;
    this.#outage = undefined;
    this.#events.onRecovery?.(this.#now() - outage.since, outage.failures);
  }
}

/** One line for a store error: the message only, since a stack per failure says nothing an operator can use. */
export function describeStoreError(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
