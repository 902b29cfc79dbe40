/**
 * The pack as the Pulumi CLI runs it. The CLI (pkg/resource/plugin/analyzer_plugin.go NewPolicyAnalyzer) starts
 * the `pulumi-analyzer-policy` script with the pack directory as working directory and argv
 * `<engine address> .`; the script runs `node $(require.resolve('@pulumi/pulumi/cmd/run-policy-pack')) "$@"`,
 * which require()s the pack (package.json main: index.cjs → pack.ts), and the PolicyPack prints its gRPC port.
 * This test does the same (the CLI itself cannot run here: no plugins), stands in for the engine with a small
 * Engine server that records what the pack logs, and speaks the Analyzer service over the stubs
 * @pulumi/pulumi ships (proto/analyzer_grpc_pb.js), as the CLI does.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { stackPlanOptions } from '../infra/fixtures.js';
import { type PlannedResource, PROJECT_DIR, planStack } from '../infra/plan.js';

const PACK_DIR = `${PROJECT_DIR}/policies`;

// The stubs and grpc-js as @pulumi/pulumi resolves them (one grpc-js instance for stubs and credentials).
const fromSdk = createRequire(
  createRequire(import.meta.url).resolve('@pulumi/pulumi/proto/analyzer_grpc_pb.js'),
);
const grpc = fromSdk('@grpc/grpc-js') as typeof import('@grpc/grpc-js');
const analyzerRpc = fromSdk(
  './analyzer_grpc_pb.js',
) as typeof import('@pulumi/pulumi/proto/analyzer_grpc_pb.js');
const analyzerPb = fromSdk('./analyzer_pb.js') as typeof import('@pulumi/pulumi/proto/analyzer_pb.js');
const engineRpc = fromSdk('./engine_grpc_pb.js') as typeof import('@pulumi/pulumi/proto/engine_grpc_pb.js');
const enginePb = fromSdk('./engine_pb.js') as typeof import('@pulumi/pulumi/proto/engine_pb.js');
const { Struct } = fromSdk(
  'google-protobuf/google/protobuf/struct_pb.js',
) as typeof import('google-protobuf/google/protobuf/struct_pb.js');
const { Empty } = fromSdk(
  'google-protobuf/google/protobuf/empty_pb.js',
) as typeof import('google-protobuf/google/protobuf/empty_pb.js');

type Client = InstanceType<typeof analyzerRpc.AnalyzerClient>;

const LEVELS = Object.fromEntries(
  Object.entries(analyzerPb.EnforcementLevel).map(([k, v]) => [v, k.toLowerCase()]),
);

/** What the pack logged through the engine (nothing, when all is well; the cause, when it fails to load). */
const logged: string[] = [];
let engine: InstanceType<typeof grpc.Server>;
let pack: ChildProcess;
let client: Client;
let stderr = '';

function startEngine(): Promise<string> {
  engine = new grpc.Server();
  const ok = (_call: unknown, done: (err: null, res: unknown) => void) => done(null, new Empty());
  engine.addService(engineRpc.EngineService, {
    log: (
      call: { request: InstanceType<typeof enginePb.LogRequest> },
      done: (err: null, res: unknown) => void,
    ) => {
      logged.push(call.request.getMessage());
      done(null, new Empty());
    },
    getRootResource: (_call: unknown, done: (err: null, res: unknown) => void) =>
      done(null, new enginePb.GetRootResourceResponse()),
    setRootResource: (_call: unknown, done: (err: null, res: unknown) => void) =>
      done(null, new enginePb.SetRootResourceResponse()),
    startDebugging: ok,
    requirePulumiVersion: ok,
  } as never);
  return new Promise((resolve, reject) =>
    engine.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) =>
      err ? reject(err) : resolve(`127.0.0.1:${port}`),
    ),
  );
}

/** Starts the pack the way `pulumi-analyzer-policy` does and resolves with the port it prints. */
function startPack(engineAddress: string): Promise<number> {
  if (!existsSync(`${PACK_DIR}/node_modules/@pulumi/policy`))
    throw new Error('the pack has no dependencies installed: run `npm ci --prefix policies`');
  const runner = createRequire(`${PACK_DIR}/package.json`).resolve('@pulumi/pulumi/cmd/run-policy-pack');
  pack = spawn(process.execPath, [runner, engineAddress, '.'], {
    cwd: PACK_DIR,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  pack.stderr?.on('data', (chunk) => {
    stderr += String(chunk);
  });
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: pack.stdout! });
    lines.once('line', (line) =>
      /^\d+$/.test(line) ? resolve(Number(line)) : reject(new Error(`pack printed ${line}`)),
    );
    pack.once('exit', (code) =>
      reject(new Error(`pack exited ${code}: ${stderr}\nlogged: ${logged.join('\n')}`)),
    );
  });
}

const call = <Req, Res>(method: (req: Req, cb: (err: Error | null, res: Res) => void) => void, req: Req) =>
  new Promise<Res>((resolve, reject) =>
    method.call(client, req, (err, res) => (err ? reject(err) : resolve(res))),
  );

beforeAll(async () => {
  const port = await startPack(await startEngine());
  client = new analyzerRpc.AnalyzerClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
});

afterAll(async () => {
  client?.close();
  if (pack !== undefined && pack.exitCode === null) {
    const exited = new Promise((done) => pack.once('exit', done));
    pack.kill('SIGTERM');
    await exited;
  }
  await new Promise((done) => engine?.tryShutdown(done));
});

// Pulumi's wire encoding of a secret (sdk/nodejs/runtime/rpc.ts), as the engine sends secret inputs.
const SECRET_SIG_KEY = '4dabf18193072939515e22adb298388d';
const SECRET_SIG = '1b47061264138c4ac30d75fd1eb44270';

/** A captured resource as the engine puts it in AnalyzeStackRequest: secrets wrapped, options and links set. */
function toAnalyzerResource(r: PlannedResource) {
  const resource = new analyzerPb.AnalyzerResource();
  const props = Object.fromEntries(
    Object.entries(r.inputs).map(([k, v]) => [
      k,
      r.secretPaths.includes(k) ? { [SECRET_SIG_KEY]: SECRET_SIG, value: v } : v,
    ]),
  );
  resource.setUrn(r.urn);
  resource.setType(r.type);
  resource.setName(r.name);
  resource.setProperties(Struct.fromJavaScript(props as never));
  resource.setOptions(new analyzerPb.AnalyzerResourceOptions());
  resource.setParent(r.options.parent);
  resource.setDependenciesList(r.options.dependencies);
  return resource;
}

function diagnostics(res: { getDiagnosticsList(): InstanceType<typeof analyzerPb.AnalyzeDiagnostic>[] }) {
  return res.getDiagnosticsList().map((d) => ({
    policy: d.getPolicyname(),
    pack: `${d.getPolicypackname()}@${d.getPolicypackversion()}`,
    level: LEVELS[d.getEnforcementlevel()],
    message: d.getMessage(),
    urn: d.getUrn(),
  }));
}

describe('the pack directory', () => {
  it('has the PulumiPolicy.yaml the CLI loads (workspace.LoadPolicyPack): a nodejs runtime, known fields only', () => {
    const project = parseYaml(readFileSync(`${PACK_DIR}/PulumiPolicy.yaml`, 'utf8')) as Record<
      string,
      unknown
    >;
    expect(project.runtime).toBe('nodejs');
    // PolicyPackProject's fields (pkg/workspace/project.go); with no `main`, the runner loads package.json's main.
    expect(
      Object.keys(project).filter(
        (k) => !['runtime', 'version', 'description', 'author', 'website', 'license'].includes(k),
      ),
    ).toEqual([]);
    const pkg = JSON.parse(readFileSync(`${PACK_DIR}/package.json`, 'utf8')) as {
      main: string;
      version: string;
    };
    expect(existsSync(`${PACK_DIR}/${pkg.main}`)).toBe(true);
  });
});

describe('the pack started as a policy analyzer', () => {
  it('reports its policies and their levels (GetAnalyzerInfo)', async () => {
    const { policies } = await import('../../policies/policies.js');
    const info = await call<InstanceType<typeof Empty>, InstanceType<typeof analyzerPb.AnalyzerInfo>>(
      client.getAnalyzerInfo,
      new Empty(),
    );
    expect(info.getName()).toBe('chatmirror');
    expect(info.getVersion()).toBe('0.1.0');
    expect(info.getSupportsconfig()).toBe(true);
    const served = info.getPoliciesList().map((p) => [p.getName(), LEVELS[p.getEnforcementlevel()]]);
    expect(served).toEqual(policies.map((p) => [p.name, p.enforcementLevel]));
    expect(served).toContainEqual(['container-read-only-rootfs', 'mandatory']);
    expect(served).toContainEqual(['replicas-shared-state-advisory', 'advisory']);
  });

  it('returns a violation naming the resource and the fix for an unsafe container (Analyze)', async () => {
    const plan = await planStack(await stackPlanOptions('staging'));
    const api = plan.resources.find((r) => r.name === 'chatmirror-staging-0')!;
    const analyzeOne = async (inputs: Record<string, unknown>) => {
      const req = new analyzerPb.AnalyzeRequest();
      req.setUrn(api.urn);
      req.setType(api.type);
      req.setName(api.name);
      req.setProperties(Struct.fromJavaScript(inputs as never));
      req.setOptions(new analyzerPb.AnalyzerResourceOptions());
      return diagnostics(await call(client.analyze, req));
    };
    expect(await analyzeOne(api.inputs)).toEqual([]);
    const unsafe = await analyzeOne({ ...api.inputs, readOnly: false, privileged: true });
    expect(unsafe.map((d) => [d.policy, d.level, d.pack, d.message])).toEqual([
      [
        'container-read-only-rootfs',
        'mandatory',
        'chatmirror@0.1.0',
        expect.stringMatching(
          /^Containers run with a read-only root filesystem\.\nchatmirror-staging-0: its root filesystem is writable .* Fix: set readOnly: true/,
        ),
      ],
      [
        'container-not-privileged',
        'mandatory',
        'chatmirror@0.1.0',
        expect.stringMatching(/\nchatmirror-staging-0: it is privileged\. Fix: /),
      ],
    ]);
  });

  it('checks a whole captured stack, secrets wrapped as the engine sends them (AnalyzeStack)', async () => {
    const options = await stackPlanOptions('staging');
    const plan = await planStack({
      ...options,
      config: { ...options.config, 'chatmirror:firewall': { enabled: false } },
    });
    const req = new analyzerPb.AnalyzeStackRequest();
    req.setResourcesList(plan.resources.map(toAnalyzerResource));
    const found = diagnostics(await call(client.analyzeStack, req));
    const api = plan.resources.find((r) => r.name === 'chatmirror-staging-0')!;
    expect(found).toEqual([
      expect.objectContaining({
        policy: 'api-port-firewalled',
        level: 'mandatory',
        urn: api.urn,
        message: expect.stringContaining(
          'chatmirror-staging-0: publishes the API on 198.51.100.20:8443 and no resource of this stack applies a firewall. Fix: set firewall.enabled: true',
        ),
      }),
    ]);
  });

  it('takes enforcement levels from the CLI (Configure), as --policy-pack-config sets them', async () => {
    const config = new analyzerPb.PolicyConfig();
    config.setEnforcementlevel(analyzerPb.EnforcementLevel.DISABLED);
    config.setProperties(Struct.fromJavaScript({}));
    const req = new analyzerPb.ConfigureAnalyzerRequest();
    req.getPolicyconfigMap().set('container-not-privileged', config);
    await call(client.configure, req);
    const plan = await planStack(await stackPlanOptions('local'));
    const api = plan.resources.find((r) => r.name === 'chatmirror-local-0')!;
    const analyze = new analyzerPb.AnalyzeRequest();
    analyze.setUrn(api.urn);
    analyze.setType(api.type);
    analyze.setName(api.name);
    analyze.setProperties(Struct.fromJavaScript({ ...api.inputs, privileged: true } as never));
    analyze.setOptions(new analyzerPb.AnalyzerResourceOptions());
    expect(diagnostics(await call(client.analyze, analyze))).toEqual([]);
    expect(logged).toEqual([]);
  });
});
