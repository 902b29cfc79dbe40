/**
 * Matches stop strings on the text stream, across token boundaries. Text that could still turn out to be the
 * start of a stop string is held back, so a stop string is never emitted, not even in part.
 */
export class StopMatcher {
  private pending = '';
  private readonly longest: number;

  constructor(private readonly stops: readonly string[]) {
    this.longest = stops.reduce((max, s) => Math.max(max, s.length), 0);
  }

  /**
   * Feeds new text. Returns the text that is now safe to emit and, if a stop string completed, which one
   * (everything from it onwards is dropped).
   */
  push(text: string): { emit: string; stopped?: string } {
    if (this.stops.length === 0) return { emit: text };
    this.pending += text;
    let at = -1;
    let stopped: string | undefined;
    for (const stop of this.stops) {
      const i = this.pending.indexOf(stop);
      if (i !== -1 && (at === -1 || i < at)) {
        at = i;
        stopped = stop;
      }
    }
    if (stopped !== undefined) {
      const emit = this.pending.slice(0, at);
      this.pending = '';
      return { emit, stopped };
    }
    const hold = this.heldSuffixLength();
    const emit = this.pending.slice(0, this.pending.length - hold);
    this.pending = this.pending.slice(this.pending.length - hold);
    return { emit };
  }

  /** Releases held text when generation ends for another reason. */
  flush(): string {
    const rest = this.pending;
    this.pending = '';
    return rest;
  }

  /** Length of the longest suffix of the pending text that is a proper prefix of some stop string. */
  private heldSuffixLength(): number {
    const max = Math.min(this.longest - 1, this.pending.length);
    for (let len = max; len > 0; len--) {
      const suffix = this.pending.slice(this.pending.length - len);
      if (this.stops.some((s) => s.startsWith(suffix))) return len;
    }
    return 0;
  }
}
