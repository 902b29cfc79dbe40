/**
 * `authPlugin`: every request needs a credential unless its route is public, and the route's scope. Its
 * `onRequest` hook applies app-wide (the plugin skips Fastify's encapsulation), authenticates with an
 * `Authenticator` (credentials.ts), puts the result on `request.principal` and refuses with OpenAI-shaped
 * errors: 401 `invalid_api_key` or 403 `insufficient_scope`, each with an RFC 6750 `WWW-Authenticate` header.
 *
 * Unknown URLs: a path that matches no route is not public, so a caller without a valid credential gets 401,
 * never 404 or 405; only authenticated callers learn which routes exist.
 */
import assert from 'node:assert/strict';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { SCOPES, type Scope } from '../../config/schema.js';
import { ApiError } from '../../errors.js';
import {
  AUTH_FAILURE_REASONS,
  AuthError,
  type Authenticator,
  type AuthFailureReason,
  hasScope,
  type Principal,
} from './credentials.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Who is calling; null on public routes. */
    principal: Principal | null;
  }
}

/** Every failure the plugin reports through `onAuthFailure`: the authenticator's reasons and its own two. */
export const AUTH_FAILURES = [...AUTH_FAILURE_REASONS, 'query_token', 'insufficient_scope'] as const;
export type AuthFailure = (typeof AUTH_FAILURES)[number];

/**
 * Query parameters that look like credentials. Tokens in URLs end up in access logs, proxy logs, browser
 * history and Referer headers, so one there is refused (401) even when valid: it is never used, and the caller
 * learns to stop sending it before the habit reaches production.
 */
export const QUERY_CREDENTIAL_PARAMS = ['access_token', 'api_key', 'apikey', 'token'] as const;

/** A route that is neither public nor in `routeScopes` but slipped past the registration check needs this. */
const FALLBACK_SCOPE: Scope = 'admin';
const REALM = 'chatmirror';

export interface AuthPluginOptions {
  authenticator: Authenticator;
  /**
   * Route URL patterns served without credentials, as registered (e.g. '/health', '/v1/models/:model'). This is
   * the operator's config, so it wins over `routeScopes` (the code's default): listing '/metrics' here makes it
   * public.
   */
  publicRoutes: readonly string[];
  /** The scope each non-public route needs, by route URL pattern (e.g. '/v1/models/:model'). */
  routeScopes: Readonly<Record<string, Scope>>;
  /** Called once per refused request, e.g. to count failures by reason. Never given the credential. */
  onAuthFailure?: (failure: AuthFailure, request: FastifyRequest) => void;
}

async function authPluginImpl(app: FastifyInstance, options: AuthPluginOptions): Promise<void> {
  const { authenticator, onAuthFailure } = options;
  const publicRoutes = new Set(options.publicRoutes);
  const routeScopes = new Map(Object.entries(options.routeScopes));
  assert(typeof authenticator?.authenticate === 'function', 'authPlugin: options.authenticator is required');
  for (const url of publicRoutes)
    assert(url.startsWith('/'), `authPlugin: public route ${url} must start with /`);
  for (const [url, scope] of routeScopes) {
    assert(SCOPES.includes(scope), `authPlugin: routeScopes[${url}] must be one of ${SCOPES.join(', ')}`);
  }

  app.decorateRequest('principal', null);

  // Fail at start-up, not in production traffic: a route added later must be declared public or given a scope.
  app.addHook('onRoute', (route) => {
    if (publicRoutes.has(route.url) || routeScopes.has(route.url)) return;
    throw new Error(
      `authPlugin: route ${String(route.method)} ${route.url} is neither in auth.publicRoutes nor in routeScopes`,
    );
  });

  function refuse(failure: AuthFailure, request: FastifyRequest, error: ApiError): never {
    request.log.info({ authFailure: failure }, 'request refused by auth');
    onAuthFailure?.(failure, request);
    throw error;
  }

  app.addHook('onRequest', async (request) => {
    if (hasQueryCredential(request.url)) {
      refuse(
        'query_token',
        request,
        unauthorized(
          'Credentials must be sent in the Authorization header, not in the URL.',
          `Bearer realm="${REALM}", error="invalid_request"`,
        ),
      );
    }
    const url = request.routeOptions.url;
    if (url !== undefined && publicRoutes.has(url)) return;

    let principal: Principal;
    try {
      principal = await authenticator.authenticate(request.headers.authorization);
    } catch (err) {
      if (!(err instanceof AuthError)) throw err;
      refuse(err.reason, request, authenticationError(err.reason));
    }
    request.principal = principal;

    // No route matched: the caller is authenticated, so the not-found handler may answer 404/405.
    if (url === undefined) return;
    const needed = routeScopes.get(url) ?? FALLBACK_SCOPE;
    if (!hasScope(principal, needed)) {
      refuse(
        'insufficient_scope',
        request,
        new ApiError(
          'insufficient_scope',
          `This credential lacks the "${needed}" scope that ${url} requires.`,
          null,
          {
            'www-authenticate': `Bearer realm="${REALM}", error="insufficient_scope", scope="${needed}"`,
          },
        ),
      );
    }
  });
}

function unauthorized(message: string, challenge: string): ApiError {
  return new ApiError('invalid_api_key', message, null, { 'www-authenticate': challenge });
}

/**
 * One message for every invalid credential, so a client (or an attacker) learns nothing about which check
 * failed; the reason goes to logs and metrics. RFC 6750 §3.1: no `error` attribute when no bearer credential
 * was presented at all.
 */
function authenticationError(reason: AuthFailureReason): ApiError {
  if (reason === 'missing' || reason === 'wrong_scheme') {
    return unauthorized(
      'Missing credentials: send an API key or token as "Authorization: Bearer <credential>".',
      `Bearer realm="${REALM}"`,
    );
  }
  return unauthorized(
    'Invalid authentication credentials.',
    `Bearer realm="${REALM}", error="invalid_token"`,
  );
}

function hasQueryCredential(rawUrl: string): boolean {
  const q = rawUrl.indexOf('?');
  if (q === -1) return false;
  const params = new URLSearchParams(rawUrl.slice(q + 1));
  for (const name of params.keys()) {
    if ((QUERY_CREDENTIAL_PARAMS as readonly string[]).includes(name.toLowerCase())) return true;
  }
  return false;
}

// What fastify-plugin would set: hooks and decorators land on the parent, so they cover every route.
export const authPlugin = Object.assign(authPluginImpl, {
  [Symbol.for('skip-override')]: true,
  [Symbol.for('fastify.display-name')]: 'chatmirror-auth',
});
