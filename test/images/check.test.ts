/**
 * `chatmirror check` against real files: the bundled model as shipped and tampered with, configured certificates
 * and keys, an unwritable cache, and made-up machines (CPUs, memory, cgroup files) for the capacity checks.
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  CheckFailedError,
  type CheckReport,
  check,
  formatReport,
  MEMORY_WARN_FRACTION,
  measureSystem,
  modelNeeds,
  parameterCount,
  RUNTIME_BASE_BYTES,
  RUNTIME_BYTES_PER_PARAMETER,
  runChecks,
  type SystemResources,
} from '../../service/check.js';
import { PREFIX_CACHE_BYTES } from '../../service/engine/prefix-cache.js';
import { UsageError } from '../../service/security/auth/commands.js';
import { generateSigningKey, writeKeySet } from '../../service/security/auth/keys.js';
import { ensureDevCertificate } from '../../service/tls/dev-cert.js';
import { TINY_MODEL_DIR } from '../helpers/model.js';

const root = mkdtempSync(join(tmpdir(), 'chatmirror-check-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let count = 0;
const fresh = (name: string) => join(root, `${name}-${count++}`);

const GiB = 1024 ** 3;
const BIG_MACHINE: SystemResources = {
  cpus: 8,
  cpuSource: 'test',
  memoryBytes: 16 * GiB,
  memorySource: 'test',
};

/**
 * Env with nothing from the developer's shell: defaults, a private cache, and the given settings. Port 0, so a
 * server a developer runs on 8443 does not fail the port check here (its own test takes a port deliberately).
 */
function env(settings: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { CHATMIRROR_CACHE: fresh('cache'), CHATMIRROR_SERVER_PORT: '0', ...settings };
}

function result(report: CheckReport, name: string) {
  const found = report.results.find((r) => r.name === name);
  expect(found, `no "${name}" check in ${JSON.stringify(report.results)}`).toBeDefined();
  return found!;
}

function modelCopy(): string {
  const dir = join(fresh('model'), 'tiny-llama');
  cpSync(TINY_MODEL_DIR, dir, { recursive: true });
  return dir;
}

describe('runChecks', () => {
  it('passes the bundled model with the default configuration', async () => {
    const report = await runChecks({ env: env(), system: BIG_MACHINE });
    expect(report.results.filter((r) => r.status !== 'ok')).toEqual([]);
    expect(report.ok).toBe(true);
    expect(result(report, 'model').detail).toMatch(/tiny-llama .*7 files.*verified against SHA256SUMS/);
    // 2 layers × 2 KV heads × 16 dims × 512 positions × 16 slots × 4 bytes, keys and values, past and present.
    expect(report.needs?.kvCacheBytes).toBe(2 * 2 * 2 * 2 * 16 * 512 * 16 * 4);
    expect(report.needs?.weightsBytes).toBe(1523057);
  });

  it('fails a model file whose bytes do not match SHA256SUMS, naming the file and both digests', async () => {
    const dir = modelCopy();
    const graph = join(dir, 'onnx/model.onnx');
    const bytes = readFileSync(graph);
    bytes[bytes.length - 1]! ^= 0xff;
    writeFileSync(graph, bytes);
    const report = await runChecks({ env: env({ CHATMIRROR_ENGINE_MODEL_DIR: dir }), system: BIG_MACHINE });
    expect(report.ok).toBe(false);
    expect(result(report, 'model')).toMatchObject({
      status: 'fail',
      detail: expect.stringMatching(
        /onnx\/model\.onnx failed verification: expected sha256 763d80ac.*, actual [0-9a-f]{64}/,
      ),
    });
    // Without a verified model there is nothing to size.
    expect(report.needs).toBeUndefined();
  });

  it('fails a model directory without SHA256SUMS, or with a listed file missing', async () => {
    const noManifest = modelCopy();
    rmSync(join(noManifest, 'SHA256SUMS'));
    const missing = modelCopy();
    rmSync(join(missing, 'special_tokens_map.json'));
    const [a, b] = await Promise.all(
      [noManifest, missing].map((dir) =>
        runChecks({ env: env({ CHATMIRROR_ENGINE_MODEL_DIR: dir }), system: BIG_MACHINE }),
      ),
    );
    expect(result(a!, 'model')).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('has no SHA256SUMS'),
    });
    expect(result(b!, 'model')).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('special_tokens_map.json is listed in SHA256SUMS but missing'),
    });
  });

  it('warns about files the manifest does not list (the engine never loads them)', async () => {
    const dir = modelCopy();
    writeFileSync(join(dir, 'onnx/model_fp16.onnx'), 'not listed');
    const report = await runChecks({ env: env({ CHATMIRROR_ENGINE_MODEL_DIR: dir }), system: BIG_MACHINE });
    expect(report.ok).toBe(true);
    expect(result(report, 'model')).toMatchObject({
      status: 'warn',
      detail: expect.stringContaining('never loaded: onnx/model_fp16.onnx'),
    });
  });

  it('fails when the worst case needs more memory than there is, saying what to change', async () => {
    const { needs } = await runChecks({ env: env(), system: BIG_MACHINE });
    // Room for the model at start, not for every slot at full context.
    const between = {
      ...BIG_MACHINE,
      memoryBytes: needs!.startBytes + needs!.prefixCacheBytes + needs!.kvCacheBytes / 2,
    };
    const report = await runChecks({ env: env(), system: between });
    expect(report.ok).toBe(false);
    expect(result(report, 'memory')).toMatchObject({
      status: 'fail',
      detail: expect.stringMatching(
        /^at start ~.* worst case ~.*\(\+ KV cache 8\.0 MiB = 16 slots \(engine\.maxBatchSize\) × 512 tokens \(engine\.contextLength\) of float32, \+ prefix cache 64\.0 MiB\); .* available \(test\): the worst case does not fit: lower engine\.maxBatchSize or engine\.contextLength/,
      ),
    });
    const lowered = await runChecks({ env: env({ CHATMIRROR_ENGINE_MAX_BATCH_SIZE: '4' }), system: between });
    expect(lowered.ok).toBe(true);
    expect(result(lowered, 'memory').status).not.toBe('fail');

    const tiny = { ...BIG_MACHINE, memoryBytes: 100 * 1024 * 1024 };
    expect(result(await runChecks({ env: env(), system: tiny }), 'memory')).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('does not fit even idle'),
    });
  });

  it('labels both figures and reads the KV cache type from the graph', async () => {
    const { needs } = await runChecks({ env: env(), system: BIG_MACHINE });
    expect(needs).toMatchObject({
      kvType: 'float32',
      kvTypeSource: 'graph',
      batchSize: 16,
      contextLength: 512,
    });
    expect(needs!.startBytes).toBe(2 * needs!.weightsBytes + needs!.runtimeBytes);
    // The bundled model: 2 layers, hidden 64, 4 heads of 16 (2 for K/V), FFN 176, vocabulary 2048, untied.
    expect(needs!.parameters).toBe(
      2048 * 64 * 2 + 2 * (2 * 64 * 64 + 2 * 64 * 32 + 3 * 64 * 176 + 2 * 64) + 64,
    );
    expect(needs!.runtimeBytes).toBe(
      Math.round(RUNTIME_BASE_BYTES + RUNTIME_BYTES_PER_PARAMETER * needs!.parameters),
    );
    expect(needs!.worstCaseBytes).toBe(needs!.startBytes + needs!.kvCacheBytes + PREFIX_CACHE_BYTES);
    expect(needs!.estimatedBytes).toBe(needs!.worstCaseBytes);
  });

  it('says a missing model directory does not exist (not that it lacks a manifest)', async () => {
    const missing = join(fresh('absent'), 'no-such-model');
    const report = await runChecks({
      env: env({ CHATMIRROR_ENGINE_MODEL_DIR: missing }),
      system: BIG_MACHINE,
    });
    expect(result(report, 'model')).toEqual({
      name: 'model',
      status: 'fail',
      detail: `engine.modelDir ${missing} does not exist`,
    });
  });

  it('fails when another process holds the configured port, naming it and the setting', async () => {
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen({ host: '127.0.0.1', port: 0 }, resolve));
    try {
      const { port } = holder.address() as AddressInfo;
      const report = await runChecks({
        env: env({ CHATMIRROR_SERVER_PORT: String(port) }),
        system: BIG_MACHINE,
      });
      expect(report.ok).toBe(false);
      expect(result(report, 'port')).toEqual({
        name: 'port',
        status: 'fail',
        detail: `127.0.0.1:${port} (server.port) is in use by another process: stop it, or set server.port (CHATMIRROR_SERVER_PORT)`,
      });
      holder.close();
      await new Promise((resolve) => holder.once('close', resolve));
      const freed = await runChecks({
        env: env({ CHATMIRROR_SERVER_PORT: String(port) }),
        system: BIG_MACHINE,
      });
      expect(result(freed, 'port')).toMatchObject({
        status: 'ok',
        detail: `free: 127.0.0.1:${port} (server.port)`,
      });
    } finally {
      holder.close();
    }
  });

  it('warns when the estimate leaves less than 20% of the memory free', async () => {
    const { needs } = await runChecks({ env: env(), system: BIG_MACHINE });
    const tight = {
      ...BIG_MACHINE,
      memoryBytes: Math.ceil(needs!.estimatedBytes / (MEMORY_WARN_FRACTION + 0.1)),
    };
    const report = await runChecks({ env: env(), system: tight });
    expect(report.ok).toBe(true);
    expect(result(report, 'memory').status).toBe('warn');
  });

  it('warns when onnxruntime is given more threads than CPUs', async () => {
    const two = { ...BIG_MACHINE, cpus: 2, cpuSource: 'cgroup quota' };
    const report = await runChecks({ env: env({ CHATMIRROR_ENGINE_INTRA_OP_THREADS: '4' }), system: two });
    expect(report.ok).toBe(true);
    expect(result(report, 'cpu')).toMatchObject({
      status: 'warn',
      detail: expect.stringContaining('intraOpThreads is 4 but 2 CPUs (cgroup quota)'),
    });
  });

  it('reports an invalid configuration as the one failure, with the loader’s message', async () => {
    const report = await runChecks({ env: env({ CHATMIRROR_SERVER_PORT: 'https' }), system: BIG_MACHINE });
    expect(report.results).toEqual([
      {
        name: 'config',
        status: 'fail',
        detail: expect.stringContaining('server.port: must be an integer between 0 and 65535'),
      },
    ]);
  });

  it('fails when the development certificate would have to be written somewhere it cannot be', async () => {
    const file = join(fresh('not-a-dir'), 'file');
    mkdirSync(join(file, '..'), { recursive: true });
    writeFileSync(file, '');
    const report = await runChecks({ env: { CHATMIRROR_CACHE: join(file, 'cache') }, system: BIG_MACHINE });
    expect(result(report, 'cache')).toMatchObject({
      status: 'fail',
      detail: expect.stringMatching(/is not a directory.*point CHATMIRROR_CACHE at a writable directory/),
    });
  });

  it('checks configured certificate and key files, and writes nothing when they and the JWKS are given', async () => {
    const a = await ensureDevCertificate(join(fresh('tls'), 'a'));
    const b = await ensureDevCertificate(join(fresh('tls'), 'b'));
    const keys = await writeKeySet(fresh('keys'), await generateSigningKey({ alg: 'EdDSA' }));
    const configured = {
      CHATMIRROR_AUTH_JWT_ISSUER: 'chatmirror',
      CHATMIRROR_AUTH_JWT_AUDIENCE: 'chatmirror',
      CHATMIRROR_AUTH_JWT_JWKS_FILE: keys.jwksFile,
    };
    const good = await runChecks({
      env: env({
        ...configured,
        CHATMIRROR_SERVER_TLS_CERT_FILE: a.certFile,
        CHATMIRROR_SERVER_TLS_KEY_FILE: a.keyFile,
      }),
      system: BIG_MACHINE,
    });
    expect(good.results.filter((r) => r.status !== 'ok')).toEqual([]);
    expect(result(good, 'cache').detail).toMatch(/nothing to write/);

    const mismatched = await runChecks({
      env: env({
        ...configured,
        CHATMIRROR_SERVER_TLS_CERT_FILE: a.certFile,
        CHATMIRROR_SERVER_TLS_KEY_FILE: b.keyFile,
      }),
      system: BIG_MACHINE,
    });
    expect(result(mismatched, 'tls')).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('is not the private key of'),
    });

    const noJwks = await runChecks({
      env: env({ ...configured, CHATMIRROR_AUTH_JWT_JWKS_FILE: join(root, 'absent.json') }),
      system: BIG_MACHINE,
    });
    expect(result(noJwks, 'auth')).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('absent.json'),
    });
  });
});

describe('modelNeeds', () => {
  const hf = { num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 8, hidden_size: 4096 };
  const engine = { modelDir: '', graphFile: '', intraOpThreads: 0, maxBatchSize: 4, maxQueue: 0 };

  it('sizes the KV cache from the model shape, the batch and the (possibly lowered) context', () => {
    const full = modelNeeds({ ...hf, max_position_embeddings: 8192 }, { engine }, 0);
    // 2 (K, V) × 2 (past, present) × 32 layers × 8 heads × 128 dims × 8192 positions × 4 slots × 4 bytes = 16 GiB.
    expect(full.kvCacheBytes).toBe(16 * GiB);
    const lowered = modelNeeds(
      { ...hf, max_position_embeddings: 8192 },
      { engine: { ...engine, contextLength: 2048 } },
      0,
    );
    expect(lowered.kvCacheBytes).toBe(4 * GiB);
  });

  it('counts the weights twice at start, and adds the full KV and prefix caches for the worst case', () => {
    const needs = modelNeeds({ ...hf, max_position_embeddings: 8192 }, { engine }, GiB, 'float32');
    // No intermediate_size here: the parameters are taken from the weights at 4 bytes each.
    expect(needs.parameters).toBe(GiB / 4);
    const runtime = Math.round(RUNTIME_BASE_BYTES + RUNTIME_BYTES_PER_PARAMETER * (GiB / 4));
    expect(needs.startBytes).toBe(2 * GiB + runtime);
    expect(needs.worstCaseBytes).toBe(2 * GiB + runtime + 16 * GiB + PREFIX_CACHE_BYTES);
  });

  it("counts SmolLM2-135M's parameters from its config, and lands near its measured VmRSS", () => {
    const smollm2 = {
      vocab_size: 49152,
      hidden_size: 576,
      intermediate_size: 1536,
      num_hidden_layers: 30,
      num_attention_heads: 9,
      num_key_value_heads: 3,
      head_dim: 64,
      tie_word_embeddings: true,
      max_position_embeddings: 8192,
    };
    expect(parameterCount(smollm2)).toBe(134_515_008);
    // Issue 11's measurements: graph sizes, and the server's VmRSS at ready.
    const MiB = 1024 ** 2;
    for (const [graphBytes, measured] of [
      [651_453_577, 1694 * MiB],
      [163_330_463, 844 * MiB],
    ] as const) {
      const { startBytes } = modelNeeds(smollm2, { engine: { maxBatchSize: 16 } }, graphBytes, 'float32');
      expect(Math.abs(startBytes - measured) / measured).toBeLessThan(0.05);
    }
  });

  it('sizes a float16 cache at half, and assumes float32 where the graph says nothing', () => {
    const full = { ...hf, max_position_embeddings: 8192 };
    expect(modelNeeds(full, { engine }, 0, 'float16')).toMatchObject({
      kvType: 'float16',
      kvTypeSource: 'graph',
      kvCacheBytes: 8 * GiB,
    });
    expect(modelNeeds(full, { engine }, 0)).toMatchObject({
      kvType: 'float32',
      kvTypeSource: 'assumed',
      kvCacheBytes: 16 * GiB,
    });
  });
});

describe('measureSystem', () => {
  function cgroupRoot(files: Record<string, string>): string {
    const dir = fresh('cgroup');
    for (const [name, content] of Object.entries(files)) {
      mkdirSync(join(dir, name, '..'), { recursive: true });
      writeFileSync(join(dir, name), `${content}\n`);
    }
    return dir;
  }

  it('lowers CPUs and memory to cgroup v2 limits', async () => {
    const system = await measureSystem(cgroupRoot({ 'cpu.max': '100000 100000', 'memory.max': String(GiB) }));
    expect(system).toMatchObject({ memoryBytes: GiB, memorySource: 'cgroup limit' });
    if (availableParallelism() > 1) expect(system).toMatchObject({ cpus: 1, cpuSource: 'cgroup quota' });
  });

  it('reads cgroup v1, where -1 and a page-rounded huge number mean no limit', async () => {
    const limited = await measureSystem(
      cgroupRoot({
        'cpu/cpu.cfs_quota_us': '50000',
        'cpu/cpu.cfs_period_us': '100000',
        'memory/memory.limit_in_bytes': String(512 * 1024 * 1024),
      }),
    );
    expect(limited).toMatchObject({ cpus: 1, memoryBytes: 512 * 1024 * 1024, memorySource: 'cgroup limit' });
    const unlimited = await measureSystem(
      cgroupRoot({
        'cpu/cpu.cfs_quota_us': '-1',
        'cpu/cpu.cfs_period_us': '100000',
        'memory/memory.limit_in_bytes': '9223372036854771712',
      }),
    );
    expect(unlimited).toMatchObject({ cpus: availableParallelism(), memorySource: 'physical' });
  });

  it('takes "max" (cgroup v2 without a limit) as no limit', async () => {
    const system = await measureSystem(cgroupRoot({ 'cpu.max': 'max 100000', 'memory.max': 'max' }));
    expect(system).toMatchObject({ cpuSource: 'affinity', memorySource: 'physical' });
  });
});

describe('chatmirror check', () => {
  async function run(argv: string[], settings: Record<string, string>) {
    let printed = '';
    // check() reads the process environment, as the CLI does: only this test's CHATMIRROR_* settings.
    const saved = Object.entries(process.env).filter(([name]) => name.startsWith('CHATMIRROR_'));
    const clear = () => {
      for (const name of Object.keys(process.env))
        if (name.startsWith('CHATMIRROR_')) delete process.env[name];
    };
    clear();
    Object.assign(process.env, env(settings));
    try {
      await check(argv, { write: (t: string) => (printed += t) });
      return { printed, error: undefined };
    } catch (err) {
      return { printed, error: err as Error & { exitCode?: number } };
    } finally {
      clear();
      Object.assign(process.env, Object.fromEntries(saved));
    }
  }

  it('prints one line per check and a verdict', async () => {
    const { printed, error } = await run([], { CHATMIRROR_SERVER_PORT: '0' });
    expect(error).toBeUndefined();
    expect(printed).toMatch(/^ {2}ok {4}config /m);
    expect(printed).toMatch(/^ {2}ok {4}model .*verified against SHA256SUMS$/m);
    expect(printed).toMatch(/^all checks passed/m);
  });

  it('exits 1 naming the failed check, after printing the report', async () => {
    const { printed, error } = await run([], { CHATMIRROR_ENGINE_MODEL_DIR: join(root, 'no-such-model') });
    expect(error).toBeInstanceOf(CheckFailedError);
    expect(error?.exitCode).toBe(1);
    expect(error?.message).toMatch(/^check failed: model: engine\.modelDir .*no-such-model does not exist$/);
    expect(printed).toMatch(/^ {2}FAIL {2}model /m);
    expect(printed).toMatch(/^1 check failed$/m);
  });

  it('prints the report as JSON with --json', async () => {
    const { printed } = await run(['--json'], {});
    const report = JSON.parse(printed) as CheckReport;
    expect(report.ok).toBe(true);
    expect(report.system.cpus).toBeGreaterThan(0);
    expect(formatReport(report)).toContain('all checks passed');
  });

  it('refuses unknown arguments with a usage error (exit 2)', async () => {
    const { error } = await run(['--model', 'x'], {});
    expect(error).toBeInstanceOf(UsageError);
    expect(error?.exitCode).toBe(2);
  });
});
