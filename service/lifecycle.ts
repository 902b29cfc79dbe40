/**
 * The service's shutdown state, shared between `serve` (which starts a drain on SIGTERM/SIGINT) and the routes
 * (which refuse new generations and report not-ready while draining). `buildApp` decorates the app with one:
 * `app.decorate('lifecycle', createLifecycle())`.
 */

export interface Lifecycle {
  /** True once shutdown has begun: requests in flight finish, new ones are turned away. */
  readonly draining: boolean;
  /** Starts the drain; calling it again changes nothing. */
  beginDrain(): void;
}

export function createLifecycle(): Lifecycle {
  let draining = false;
  return {
    get draining() {
      return draining;
    },
    beginDrain() {
      draining = true;
    },
  };
}

declare module 'fastify' {
  interface FastifyInstance {
    lifecycle: Lifecycle;
  }
}
