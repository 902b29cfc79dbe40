/**
 * A request's delivery switch, shared by all of its sequences: paused while its client's socket is full, so the
 * engine stops decoding them (the worker parks them out of the batch) instead of queueing tokens nobody reads.
 */
export class FlowValve {
  private readonly listeners = new Set<(paused: boolean) => void>();
  private state = false;

  get paused(): boolean {
    return this.state;
  }

  set(paused: boolean): void {
    if (paused === this.state) return;
    this.state = paused;
    for (const listener of [...this.listeners]) listener(paused);
  }

  /** Calls `listener` on every change; returns the unsubscribe function. */
  subscribe(listener: (paused: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
