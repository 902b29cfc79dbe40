/**
 * Error messages that quote the request (a model id, a field name, a URL) quote at most ECHO_LIMIT characters
 * of it, with an ellipsis: a 900 KB value must not come back whole, or twice (issue 10, item 9).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ECHO_LIMIT } from '../../../service/errors.js';
import { startApp, stopApp, type TestApp } from '../../helpers/app.js';

const HUGE = 'x'.repeat(900_000);
/** Room for the message around one echoed value. */
const MESSAGE_ROOM = ECHO_LIMIT + 400;

let t: TestApp;
beforeAll(async () => {
  t = await startApp();
});
afterAll(async () => stopApp(t));

async function send(method: 'GET' | 'POST', url: string, payload?: Record<string, unknown>) {
  const r = await t.app.inject({ method, url, headers: await t.auth(), ...(payload ? { payload } : {}) });
  return { status: r.statusCode, size: r.body.length, error: r.json().error };
}

function expectTruncated(error: { message: string; param: string | null }) {
  expect(error.message.length).toBeLessThan(MESSAGE_ROOM);
  expect(error.message).toMatch(new RegExp(`x{${ECHO_LIMIT - 8},${ECHO_LIMIT}}…`));
  expect((error.param ?? '').length).toBeLessThanOrEqual(ECHO_LIMIT + 1);
}

describe('echoed input in error messages is truncated', () => {
  it('a 900 KB model id (404 model_not_found)', async () => {
    const r = await send('POST', '/v1/chat/completions', {
      model: HUGE,
      messages: [{ role: 'user', content: 'Hi' }],
    });
    expect(r.status).toBe(404);
    expect(r.error.code).toBe('model_not_found');
    expectTruncated(r.error);
    expect(r.size).toBeLessThan(2 * MESSAGE_ROOM);
  });

  it('a 900 KB unknown field name (400), in the message and the param', async () => {
    const r = await send('POST', '/v1/chat/completions', {
      model: t.engine.info.name,
      messages: [{ role: 'user', content: 'Hi' }],
      [HUGE]: 1,
    });
    expect(r.status).toBe(400);
    expect(r.error.message).toMatch(/^Unrecognized request argument supplied: x+…$/);
    expectTruncated(r.error);
    expect(r.size).toBeLessThan(2 * MESSAGE_ROOM);
  });

  it('a long model id in GET /v1/models/{id} is not quoted at all', async () => {
    const r = await send('GET', `/v1/models/${'x'.repeat(10_000)}`);
    expect(r.status).toBe(404);
    expect(r.size).toBeLessThan(MESSAGE_ROOM);
  });

  it('a long unknown URL', async () => {
    const r = await send('GET', `/v1/${'x'.repeat(10_000)}`);
    expect(r.status).toBe(404);
    expect(r.error.code).toBe('unknown_url');
    expectTruncated(r.error);
  });
});
