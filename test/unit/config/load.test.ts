import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Value } from '@sinclair/typebox/value';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, envSettings, envVarName, loadConfig } from '../../../service/config/load.js';
import { BUNDLED_MODEL_DIR } from '../../../service/config/paths.js';
import { ServiceConfigSchema } from '../../../service/config/schema.js';
import { ENGINE_DEFAULTS } from '../../../service/engine/index.js';

const dir = mkdtempSync(join(tmpdir(), 'chatmirror-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let fileCount = 0;
function file(name: string, content: string): string {
  const path = join(dir, `${fileCount++}-${name}`);
  writeFileSync(path, content);
  return path;
}

/** Runs loadConfig expecting a ConfigError and returns its message. */
function failure(options: Parameters<typeof loadConfig>[0]): string {
  try {
    loadConfig(options);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('loadConfig accepted a bad configuration');
}

describe('loadConfig defaults', () => {
  it('fills every section from the schema and the engine defaults', () => {
    const config = loadConfig({ env: {} });
    expect(Value.Check(ServiceConfigSchema, config)).toBe(true);
    expect(config.server).toMatchObject({
      host: '127.0.0.1',
      port: 8443,
      tls: { enabled: true, devCertDir: join(homedir(), '.cache', 'chatmirror', 'dev-tls') },
      bodyLimitBytes: 1024 * 1024,
      requestTimeoutMs: 300_000,
      headersTimeoutMs: 10_000,
      keepAliveTimeoutMs: 5_000,
      maxHeaderBytes: 16_384,
      shutdownGraceMs: 30_000,
    });
    expect(config.server.tls.certFile).toBeUndefined();
    expect(config.server.publicBaseUrl).toBeUndefined();
    expect(config.engine).toEqual({ modelDir: BUNDLED_MODEL_DIR, ...ENGINE_DEFAULTS });
    expect(config.limits).toEqual({
      maxMessages: 256,
      maxTokensCap: 2048,
      maxN: 8,
      maxStop: 4,
      maxStopLength: 64,
      maxLogitBiasEntries: 300,
      retryAfterSeconds: 1,
    });
    expect(config.models.id).toBe('tiny-llama');
    expect(config.models.aliases.support?.temperature).toBe(0.2);
    expect(config.models.aliases.creative?.temperature).toBe(0.9);
    expect(config.models.defaults).toEqual({});
    expect(config.log.level).toBe('info');
  });

  it('puts the dev certificate under CHATMIRROR_CACHE when set', () => {
    const config = loadConfig({ env: { CHATMIRROR_CACHE: '/var/cache/cm' } });
    expect(config.server.tls.devCertDir).toBe('/var/cache/cm/dev-tls');
  });

  it('does not share default objects between calls', () => {
    const first = loadConfig({ env: {} });
    first.models.aliases.support!.temperature = 1.5;
    expect(loadConfig({ env: {} }).models.aliases.support?.temperature).toBe(0.2);
  });
});

describe('loadConfig sources', () => {
  it('reads YAML, resolving relative paths against the file', () => {
    const path = file(
      'service.yaml',
      'server:\n  port: 9001\n  tls:\n    certFile: certs/c.pem\n    keyFile: /abs/k.pem\nengine:\n  modelDir: models/qwen\n',
    );
    const config = loadConfig({ file: path, env: {} });
    expect(config.server.port).toBe(9001);
    expect(config.server.tls.certFile).toBe(join(dir, 'certs/c.pem'));
    expect(config.server.tls.keyFile).toBe('/abs/k.pem');
    expect(config.engine.modelDir).toBe(join(dir, 'models/qwen'));
    // The served id follows the configured model directory.
    expect(config.models.id).toBe('qwen');
  });

  it('reads JSON by extension, and the file named by CHATMIRROR_CONFIG', () => {
    const path = file('service.json', JSON.stringify({ log: { level: 'debug' }, models: { id: 'mine' } }));
    expect(loadConfig({ env: { CHATMIRROR_CONFIG: path } }).log.level).toBe('debug');
    expect(loadConfig({ file: path, env: {} }).models.id).toBe('mine');
  });

  it('lets a file replace the default aliases, or remove them all', () => {
    const own = loadConfig({
      file: file('aliases.yaml', 'models:\n  aliases:\n    code:\n      top_k: 40\n'),
      env: {},
    });
    expect(own.models.aliases).toEqual({ code: { top_k: 40 } });
    const none = loadConfig({ file: file('no-aliases.yaml', 'models:\n  aliases: {}\n'), env: {} });
    expect(none.models.aliases).toEqual({});
  });

  it('treats an empty file as no settings', () => {
    expect(loadConfig({ file: file('empty.yaml', ''), env: {} }).server.port).toBe(8443);
  });

  it('applies env over file over defaults', () => {
    const path = file('layers.yaml', 'server:\n  host: 0.0.0.0\n  port: 9001\nlimits:\n  maxN: 2\n');
    const config = loadConfig({
      file: path,
      env: { CHATMIRROR_SERVER_PORT: '9000', CHATMIRROR_LIMITS_MAX_N: '4' },
    });
    expect(config.server.port).toBe(9000); // env beats file
    expect(config.limits.maxN).toBe(4); // env beats file
    expect(config.server.host).toBe('0.0.0.0'); // file beats default
    expect(config.limits.maxMessages).toBe(256); // default
  });

  it('coerces env strings to the schema types', () => {
    const config = loadConfig({
      cwd: '/srv',
      env: {
        CHATMIRROR_SERVER_TLS_ENABLED: 'false',
        CHATMIRROR_SERVER_SHUTDOWN_GRACE_MS: '0',
        CHATMIRROR_ENGINE_MODEL_DIR: 'models/x',
        CHATMIRROR_ENGINE_CONTEXT_LENGTH: '1024',
        CHATMIRROR_MODELS_DEFAULTS_TOP_P: '0.95',
        CHATMIRROR_MODELS_ALIASES: '{"code":{"temperature":0,"max_tokens":512}}',
        CHATMIRROR_LOG_LEVEL: 'warn',
      },
    });
    expect(config.server.tls.enabled).toBe(false);
    expect(config.server.shutdownGraceMs).toBe(0);
    expect(config.engine.modelDir).toBe('/srv/models/x');
    expect(config.engine.contextLength).toBe(1024);
    expect(config.models.defaults.top_p).toBe(0.95);
    // A JSON record replaces the default aliases rather than merging into them.
    expect(config.models.aliases).toEqual({ code: { temperature: 0, max_tokens: 512 } });
    expect(config.log.level).toBe('warn');
    for (const [text, expected] of [
      ['TRUE', true],
      ['1', true],
      ['yes', true],
      ['off', false],
      ['0', false],
    ] as const) {
      expect(loadConfig({ env: { CHATMIRROR_SERVER_TLS_ENABLED: text } }).server.tls.enabled).toBe(expected);
    }
  });

  it('treats an empty env var as unset', () => {
    expect(loadConfig({ env: { CHATMIRROR_SERVER_PORT: '' } }).server.port).toBe(8443);
  });
});

describe('env var names', () => {
  it('are CHATMIRROR_<SECTION>_<KEY> in SCREAMING_SNAKE, one per scalar setting', () => {
    expect(envVarName(['server', 'tls', 'enabled'])).toBe('CHATMIRROR_SERVER_TLS_ENABLED');
    expect(envVarName(['engine', 'modelDir'])).toBe('CHATMIRROR_ENGINE_MODEL_DIR');
    expect(envVarName(['models', 'defaults', 'top_p'])).toBe('CHATMIRROR_MODELS_DEFAULTS_TOP_P');
    const names = envSettings().map((setting) => setting.name);
    expect(new Set(names).size).toBe(names.length);
    expect(names).toEqual(
      expect.arrayContaining([
        'CHATMIRROR_SERVER_PORT',
        'CHATMIRROR_SERVER_BODY_LIMIT_BYTES',
        'CHATMIRROR_SERVER_TLS_DEV_CERT_DIR',
        'CHATMIRROR_ENGINE_MAX_BATCH_SIZE',
        'CHATMIRROR_LIMITS_MAX_TOKENS_CAP',
        'CHATMIRROR_MODELS_ALIASES',
        'CHATMIRROR_LOG_LEVEL',
      ]),
    );
  });
});

describe('loadConfig errors name the key, the value, what is allowed and the source', () => {
  it.each([
    {
      name: 'integer out of range from env',
      env: { CHATMIRROR_SERVER_PORT: '70000' },
      expected: [
        'server.port',
        'must be an integer between 0 and 65535',
        'got 70000',
        'env CHATMIRROR_SERVER_PORT',
      ],
    },
    {
      name: 'number that does not parse',
      env: { CHATMIRROR_ENGINE_MAX_QUEUE: 'lots' },
      expected: [
        'engine.maxQueue',
        'must be an integer ≥ 0',
        'got "lots"',
        'env CHATMIRROR_ENGINE_MAX_QUEUE',
      ],
    },
    {
      name: 'boolean that does not parse',
      env: { CHATMIRROR_SERVER_TLS_ENABLED: 'maybe' },
      expected: [
        'server.tls.enabled',
        'must be true or false',
        'got "maybe"',
        'env CHATMIRROR_SERVER_TLS_ENABLED',
      ],
    },
    {
      name: 'value outside an enumeration',
      env: { CHATMIRROR_LOG_LEVEL: 'loud' },
      expected: ['log.level', 'must be one of "fatal", "error"', 'got "loud"', 'env CHATMIRROR_LOG_LEVEL'],
    },
    {
      name: 'exclusive bound',
      env: { CHATMIRROR_MODELS_DEFAULTS_TOP_P: '0' },
      expected: ['models.defaults.top_p', 'must be a number > 0 and ≤ 1', 'got 0'],
    },
    {
      name: 'unparseable JSON for a record',
      env: { CHATMIRROR_MODELS_ALIASES: '{nope' },
      expected: ['models.aliases', 'must be a JSON object', 'got "{nope"', 'env CHATMIRROR_MODELS_ALIASES'],
    },
    {
      name: 'alias name outside the allowed pattern',
      env: { CHATMIRROR_MODELS_ALIASES: '{"two words":{}}' },
      expected: ['models.aliases.two words', 'names must match', 'env CHATMIRROR_MODELS_ALIASES'],
    },
    {
      name: 'unknown env var under a section prefix',
      env: { CHATMIRROR_SERVER_PROT: '9000' },
      expected: [
        'CHATMIRROR_SERVER_PROT="9000" is not a config setting',
        'did you mean CHATMIRROR_SERVER_PORT?',
      ],
    },
    {
      name: 'certificate without key',
      env: { CHATMIRROR_SERVER_TLS_CERT_FILE: '/etc/cm/cert.pem' },
      expected: ['server.tls.certFile', 'needs server.tls.keyFile', 'env CHATMIRROR_SERVER_TLS_CERT_FILE'],
    },
    {
      name: 'headers timeout above request timeout',
      env: { CHATMIRROR_SERVER_HEADERS_TIMEOUT_MS: '400000' },
      expected: ['server.headersTimeoutMs', 'must not exceed server.requestTimeoutMs (300000)', 'got 400000'],
    },
    {
      name: 'preset max_tokens above the server cap',
      env: { CHATMIRROR_MODELS_ALIASES: '{"long":{"max_tokens":5000}}' },
      expected: ['models.aliases.long.max_tokens', 'must not exceed limits.maxTokensCap (2048)', 'got 5000'],
    },
    {
      name: 'prompt limit that leaves no room',
      env: { CHATMIRROR_ENGINE_CONTEXT_LENGTH: '512', CHATMIRROR_LIMITS_MAX_PROMPT_TOKENS: '512' },
      expected: ['limits.maxPromptTokens', 'must be below engine.contextLength (512)'],
    },
    {
      name: 'alias shadowing the served id',
      env: { CHATMIRROR_MODELS_ID: 'support' },
      expected: ['models.aliases.support', 'is the served model id'],
    },
  ])('$name', ({ env, expected }) => {
    const message = failure({ env });
    for (const part of expected) expect(message).toContain(part);
  });

  it('names the file for values that came from it', () => {
    const path = file('bad.yaml', 'server:\n  port: "https"\n');
    const message = failure({ file: path, env: {} });
    expect(message).toContain('server.port: must be an integer between 0 and 65535, got "https"');
    expect(message).toContain(`file ${path}`);
  });

  it('rejects unknown keys in the file, suggesting the nearest known one', () => {
    const path = file('typo.yaml', 'server:\n  bodyLimit: 10\nlimits:\n  max_n: 3\n');
    const message = failure({ file: path, env: {} });
    expect(message).toContain('server.bodyLimit: unknown key (did you mean "bodyLimitBytes"?)');
    expect(message).toContain('limits.max_n: unknown key (did you mean "maxN"?)');
    expect(message).toContain('allowed: host, port, tls');
    expect(message).toContain(`file ${path}`);
  });

  it('rejects an unknown section without a far-fetched suggestion', () => {
    const message = failure({ file: file('section.yaml', 'database:\n  url: x\n'), env: {} });
    expect(message).toContain(
      'database: unknown key; allowed: server, engine, limits, models, auth, quotas, network, filters, metrics, log',
    );
  });

  it('reports every problem at once', () => {
    const message = failure({ env: { CHATMIRROR_SERVER_PORT: '-1', CHATMIRROR_LIMITS_MAX_N: '0' } });
    expect(message).toContain('server.port');
    expect(message).toContain('limits.maxN: must be an integer ≥ 1, got 0');
  });

  it('says the file is the problem when it cannot be read or parsed', () => {
    expect(failure({ file: join(dir, 'missing.yaml'), env: {} })).toMatch(
      /cannot read the config file: ENOENT.*\(file .*missing\.yaml\)/,
    );
    expect(failure({ file: file('broken.yaml', 'server: [1,\n'), env: {} })).toContain(
      'cannot parse the config file',
    );
    expect(failure({ file: file('broken.json', '{"server": '), env: {} })).toContain(
      'cannot parse the config file',
    );
    expect(failure({ file: file('list.yaml', '- 1\n- 2\n'), env: {} })).toContain(
      'the config file must hold a mapping of sections, got [1,2]',
    );
  });

  it('names CHATMIRROR_CONFIG as the origin of the file when it chose it', () => {
    const path = file('from-env.yaml', 'log:\n  level: 3\n');
    expect(failure({ env: { CHATMIRROR_CONFIG: path } })).toContain(
      `(file ${path} (from CHATMIRROR_CONFIG))`,
    );
  });
});

describe('quotas.redisPasswordFile', () => {
  const PASSWORD = 'pw-from-the-file-0123456789';

  it('reads the password from the file (its first line), relative to the config file', () => {
    file('redis-password', `${PASSWORD}\r\nignored second line\n`);
    const name = `${fileCount - 1}-redis-password`;
    const config = loadConfig({
      file: file(
        'redis.yaml',
        `quotas:\n  store: redis\n  redisUrl: redis://chatmirror-prod-redis:6379/0\n  redisPasswordFile: ${name}\n`,
      ),
      env: {},
    });
    expect(config.quotas).toMatchObject({
      store: 'redis',
      redisUrl: 'redis://chatmirror-prod-redis:6379/0',
      redisPasswordFile: join(dir, name),
      redisPassword: PASSWORD,
    });
  });

  it('leaves redisPassword unset without the file', () => {
    const config = loadConfig({
      env: { CHATMIRROR_QUOTAS_STORE: 'redis', CHATMIRROR_QUOTAS_REDIS_URL: 'redis://h:6379/0' },
    });
    expect(config.quotas.redisPassword).toBeUndefined();
  });

  it('names the key when the file cannot be read or is empty', () => {
    const missing = join(dir, 'no-such-password');
    expect(
      failure({
        env: {
          CHATMIRROR_QUOTAS_STORE: 'redis',
          CHATMIRROR_QUOTAS_REDIS_URL: 'redis://h:6379/0',
          CHATMIRROR_QUOTAS_REDIS_PASSWORD_FILE: missing,
        },
      }),
    ).toBe(
      `invalid configuration: quotas.redisPasswordFile: cannot read the password file: ENOENT: no such file or directory, open '${missing}', got ${JSON.stringify(missing)} (env CHATMIRROR_QUOTAS_REDIS_PASSWORD_FILE)`,
    );
    expect(
      failure({
        env: {
          CHATMIRROR_QUOTAS_STORE: 'redis',
          CHATMIRROR_QUOTAS_REDIS_URL: 'redis://h:6379/0',
          CHATMIRROR_QUOTAS_REDIS_PASSWORD_FILE: file('empty-password', '\n'),
        },
      }),
    ).toContain('quotas.redisPasswordFile: the password file is empty');
  });

  it('refuses a redisUrl that carries a password as well, without printing it', () => {
    const message = failure({
      env: {
        CHATMIRROR_QUOTAS_STORE: 'redis',
        CHATMIRROR_QUOTAS_REDIS_URL: 'redis://:hunter2-in-the-url@h:6379/0',
        CHATMIRROR_QUOTAS_REDIS_PASSWORD_FILE: file('password', `${PASSWORD}\n`),
      },
    });
    expect(message).toContain(
      'quotas.redisUrl: must not carry a password when quotas.redisPasswordFile is set (the file holds it), got "redis://:***@h:6379/0" (env CHATMIRROR_QUOTAS_REDIS_URL)',
    );
    expect(message).not.toContain('hunter2');
    // A user name (Redis ACLs) is not a password: it stays in the URL.
    const withUser = loadConfig({
      env: {
        CHATMIRROR_QUOTAS_STORE: 'redis',
        CHATMIRROR_QUOTAS_REDIS_URL: 'redis://quota@h:6379/0',
        CHATMIRROR_QUOTAS_REDIS_PASSWORD_FILE: file('password', `${PASSWORD}\n`),
      },
    });
    expect(withUser.quotas.redisPassword).toBe(PASSWORD);
  });
});
