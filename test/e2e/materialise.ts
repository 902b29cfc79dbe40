/**
 * Creates what a captured plan declares on the real local dockerd, in the order the engine would (each resource
 * after every resource it depends on), and removes it again in reverse order: images pulled by digest,
 * networks, volumes, containers (started, and for `wait` only done once healthy), and the command resources'
 * create scripts (their delete scripts on teardown) run by their own interpreter inside a network namespace made
 * for the proof, so a firewall script changes that namespace's nftables and never the host's.
 *
 * This stands in for the providers, which cannot be downloaded here: it interprets their resources' inputs as
 * the providers document them and refuses any input it does not understand (container-spec.ts).
 */
import { spawn } from 'node:child_process';
import type { PlannedResource } from '../infra/plan.js';
import { containerSpec } from './container-spec.js';
import { containerLogs, dockerApi, inspectContainer } from './docker-api.js';

export interface StepTiming {
  urn: string;
  action: 'create' | 'delete';
  ms: number;
}

const SKIPPED_TYPES = new Set([
  // The local daemon: the provider resource carries no settings for a local target (checked below).
  'pulumi:providers:docker',
  // Computed on the operator's machine during capture (tls-outputs.ts): nothing exists on the host.
  'tls:index/privateKey:PrivateKey',
  'tls:index/selfSignedCert:SelfSignedCert',
  'tls:index/certRequest:CertRequest',
  'tls:index/locallySignedCert:LocallySignedCert',
]);

/** Custom resources in creation order: every dependency before its dependents (Kahn, ties in declaration order). */
export function creationOrder(resources: PlannedResource[]): PlannedResource[] {
  const custom = resources.filter((r) => r.custom);
  const byUrn = new Map(custom.map((r) => [r.urn, r]));
  const done = new Set<string>();
  const ordered: PlannedResource[] = [];
  while (ordered.length < custom.length) {
    const next = custom.find(
      (r) => !done.has(r.urn) && r.options.dependencies.every((d) => done.has(d) || !byUrn.has(d)),
    );
    if (next === undefined) {
      const stuck = custom.filter((r) => !done.has(r.urn)).map((r) => r.name);
      throw new Error(`dependency cycle among ${stuck.join(', ')}`);
    }
    done.add(next.urn);
    ordered.push(next);
  }
  return ordered;
}

export interface MaterialiseOptions {
  /** Network namespace the command resources run in (made by the caller). */
  netns: string;
  /**
   * Why a resource cannot be created on this machine (e.g. a command that needs a running systemd), or
   * undefined. A skipped resource is logged with its reason, and not created or deleted.
   */
  cannotRun?: (resource: PlannedResource) => string | undefined;
  log?: (line: string) => void;
}

/** A deployment in progress: what was created, so teardown removes exactly that. */
export class Deployment {
  readonly created: PlannedResource[] = [];
  readonly timings: StepTiming[] = [];
  /** stdout of each command resource's create script, by name. */
  readonly commandOutput = new Map<string, string>();

  constructor(private readonly options: MaterialiseOptions) {}

  async createAll(resources: PlannedResource[]): Promise<void> {
    for (const resource of creationOrder(resources)) await this.create(resource);
  }

  readonly skipped: { name: string; why: string }[] = [];

  async create(resource: PlannedResource): Promise<void> {
    const why = this.options.cannotRun?.(resource);
    if (why !== undefined) {
      this.skipped.push({ name: resource.name, why });
      this.options.log?.(`NOT created ${resource.type} ${resource.name}: ${why}`);
      return;
    }
    const started = Date.now();
    // Recorded before it is made, as the engine keeps a failed create in its state: a container that was created
    // but would not start is still removed by the teardown (every delete tolerates what is already gone).
    this.created.push(resource);
    await this.createOne(resource);
    this.timings.push({ urn: resource.urn, action: 'create', ms: Date.now() - started });
    this.options.log?.(`created ${resource.type} ${resource.name} (${Date.now() - started} ms)`);
  }

  /**
   * Moves the deployment to a new capture of the same stack, as `pulumi up` would: in the new plan's dependency
   * order, a new resource is created, an unchanged one kept, a changed command updated in place (its update
   * script, or create without one; new triggers replace it), and any other changed resource replaced — the old
   * one deleted first with deleteBeforeReplace, else the replacement created first and the old one deleted at
   * the end, after every create, as the engine defers DeleteReplaced steps. Resources the new plan lacks are
   * deleted at the end too, dependents first.
   */
  async update(
    next: PlannedResource[],
  ): Promise<{ created: number; updated: number; replaced: number; deleted: number }> {
    const current = new Map(this.created.map((r) => [r.urn, r]));
    const nextUrns = new Set(next.map((r) => r.urn));
    const deferred: PlannedResource[] = [];
    const counts = { created: 0, updated: 0, replaced: 0, deleted: 0 };
    for (const r of creationOrder(next)) {
      const old = current.get(r.urn);
      if (old === undefined) {
        await this.create(r);
        counts.created++;
        continue;
      }
      const changed = changedKeys(old.inputs, r.inputs);
      if (changed.length === 0) {
        this.created.splice(this.created.indexOf(old), 1, r);
        continue;
      }
      if (r.type === 'command:local:Command' && !changed.includes('triggers') && !replacesOn(r, changed)) {
        const script = typeof r.inputs.update === 'string' ? r.inputs.update : r.inputs.create;
        if (typeof script === 'string') this.commandOutput.set(r.name, await this.runCommand(r, script));
        this.created.splice(this.created.indexOf(old), 1, r);
        this.options.log?.(`updated ${r.type} ${r.name} (${changed.join(', ')})`);
        counts.updated++;
        continue;
      }
      this.options.log?.(`replacing ${r.type} ${r.name} (${changed.join(', ')})`);
      counts.replaced++;
      if (r.options.deleteBeforeReplace) {
        await this.destroy(old);
        await this.create(r);
      } else {
        await this.create(r);
        deferred.push(old);
      }
    }
    for (const old of this.created.filter((r) => !nextUrns.has(r.urn))) deferred.push(old);
    for (const old of deferred.reverse()) {
      await this.destroy(old);
      counts.deleted++;
    }
    return counts;
  }

  /** Deletes everything created, dependents first; goes on past failures and throws them all at the end. */
  async destroyAll(): Promise<void> {
    const failures: string[] = [];
    for (const resource of [...this.created].reverse()) {
      try {
        await this.destroy(resource);
      } catch (err) {
        failures.push(`${resource.name}: ${(err as Error).message}`);
      }
    }
    if (failures.length > 0) throw new Error(`teardown failed:\n${failures.join('\n')}`);
  }

  async destroy(resource: PlannedResource): Promise<void> {
    const started = Date.now();
    await this.deleteOne(resource);
    this.created.splice(this.created.indexOf(resource), 1);
    this.timings.push({ urn: resource.urn, action: 'delete', ms: Date.now() - started });
    this.options.log?.(`deleted ${resource.type} ${resource.name} (${Date.now() - started} ms)`);
  }

  private async createOne(r: PlannedResource): Promise<void> {
    const i = r.inputs;
    if (SKIPPED_TYPES.has(r.type)) {
      if (r.type === 'pulumi:providers:docker' && Object.keys(i).some((k) => k !== 'version'))
        throw new Error(
          `${r.name}: the proof runs against the local daemon only (provider inputs ${Object.keys(i)})`,
        );
      return;
    }
    switch (r.type) {
      case 'docker:index/remoteImage:RemoteImage':
        return pullByDigest(String(i.name));
      case 'docker:index/network:Network': {
        onlyKeys(r, ['name', 'driver', 'ipamConfigs', 'labels', 'internal']);
        const ipam = (i.ipamConfigs ?? []) as { subnet?: string; gateway?: string }[];
        await dockerApi('POST', '/networks/create', {
          Name: i.name,
          Driver: i.driver ?? 'bridge',
          CheckDuplicate: true,
          Internal: Boolean(i.internal),
          IPAM: { Driver: 'default', Config: ipam.map((c) => ({ Subnet: c.subnet, Gateway: c.gateway })) },
          Labels: labelMap(i.labels),
        });
        return;
      }
      case 'docker:index/volume:Volume':
        onlyKeys(r, ['name', 'labels', 'driver']);
        await dockerApi('POST', '/volumes/create', {
          Name: i.name,
          Driver: i.driver ?? 'local',
          Labels: labelMap(i.labels),
        });
        return;
      case 'docker:index/container:Container':
        return this.createContainer(r);
      case 'command:local:Command': {
        onlyKeys(r, ['create', 'update', 'delete', 'stdin', 'interpreter', 'triggers', 'environment', 'dir']);
        if (typeof i.create !== 'string') return;
        const out = await this.runCommand(r, i.create);
        this.commandOutput.set(r.name, out);
        return;
      }
      default:
        throw new Error(`${r.name}: resource type ${r.type} is not materialised by the deploy proof`);
    }
  }

  private async createContainer(r: PlannedResource): Promise<void> {
    const spec = containerSpec(r.inputs);
    await dockerApi('POST', `/containers/create?name=${encodeURIComponent(spec.name)}`, spec.body);
    for (const network of spec.extraNetworks)
      await dockerApi('POST', `/networks/${encodeURIComponent(network.name)}/connect`, {
        Container: spec.name,
        EndpointConfig: { Aliases: network.aliases },
      });
    await dockerApi('POST', `/containers/${encodeURIComponent(spec.name)}/start`, undefined, {
      allow: [304],
    });
    if (spec.wait.healthy) await waitHealthy(spec.name, spec.wait.timeoutSeconds);
    else {
      const state = (await inspectContainer(spec.name)).State;
      if (!state.Running)
        throw new Error(`${spec.name} is not running: ${await containerLogs(spec.name, 30)}`);
    }
  }

  private async deleteOne(r: PlannedResource): Promise<void> {
    const i = r.inputs;
    switch (r.type) {
      case 'docker:index/container:Container': {
        const spec = containerSpec(i);
        const name = encodeURIComponent(spec.name);
        await dockerApi('POST', `/containers/${name}/stop?t=${spec.stopGraceSeconds}`, undefined, {
          allow: [304, 404],
        });
        await dockerApi('DELETE', `/containers/${name}?force=1`, undefined, { allow: [404] });
        return;
      }
      case 'docker:index/volume:Volume':
        if (r.options.retainOnDelete) return;
        await dockerApi('DELETE', `/volumes/${encodeURIComponent(String(i.name))}`, undefined, {
          allow: [404],
        });
        return;
      case 'docker:index/network:Network':
        await dockerApi('DELETE', `/networks/${encodeURIComponent(String(i.name))}`, undefined, {
          allow: [404],
        });
        return;
      case 'command:local:Command':
        if (typeof i.delete === 'string') await this.runCommand(r, i.delete);
        return;
      case 'docker:index/remoteImage:RemoteImage':
        // keepLocally: the provider leaves the image; otherwise it removes it.
        if (i.keepLocally !== true)
          await dockerApi('DELETE', `/images/${encodeURIComponent(String(i.name))}`, undefined, {
            allow: [404, 409],
          });
        return;
      default:
        return;
    }
  }

  /** A command resource's script: its interpreter (default /bin/sh -c), its stdin, inside the proof's netns. */
  runCommand(r: PlannedResource, script: string): Promise<string> {
    const interpreter = (r.inputs.interpreter as string[] | undefined) ?? ['/bin/sh', '-c'];
    const env = { ...process.env, ...((r.inputs.environment ?? {}) as Record<string, string>) };
    return new Promise((done, fail) => {
      const child = spawn('ip', ['netns', 'exec', this.options.netns, ...interpreter, script], {
        env,
        ...(typeof r.inputs.dir === 'string' ? { cwd: r.inputs.dir } : {}),
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString('utf8');
      });
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString('utf8');
      });
      child.on('error', fail);
      child.on('close', (code) =>
        code === 0
          ? done(stdout)
          : fail(new Error(`${r.name}: script exited ${code}: ${stderr.trim() || stdout.trim()}`)),
      );
      child.stdin.end(typeof r.inputs.stdin === 'string' ? r.inputs.stdin : '');
    });
  }
}

/** Pulls `repo@sha256:…` by its digest and checks the daemon now holds exactly that digest. */
export async function pullByDigest(ref: string): Promise<void> {
  const at = ref.lastIndexOf('@');
  if (at < 0) throw new Error(`${ref} is not a digest reference`);
  const repo = ref.slice(0, at);
  const digest = ref.slice(at + 1);
  const { body } = await dockerApi(
    'POST',
    `/images/create?fromImage=${encodeURIComponent(repo)}&tag=${encodeURIComponent(digest)}`,
  );
  // The pull streams JSON progress lines; an error arrives as one of them with status 200.
  const failed = body
    .toString('utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as { error?: string })
    .find((line) => line.error !== undefined);
  if (failed !== undefined) throw new Error(`pull ${ref}: ${failed.error}`);
  const image = JSON.parse(
    (await dockerApi('GET', `/images/${encodeURIComponent(ref)}/json`)).body.toString('utf8'),
  ) as { RepoDigests: string[] };
  if (!image.RepoDigests.includes(ref))
    throw new Error(`pulled ${ref} but the daemon lists ${image.RepoDigests}`);
}

/** Polls the container's health until healthy, failing fast if it exits or turns unhealthy. */
export async function waitHealthy(name: string, timeoutSeconds: number): Promise<void> {
  const deadline = Date.now() + timeoutSeconds * 1000;
  for (;;) {
    const { State } = await inspectContainer(name);
    const health = State.Health?.Status;
    if (health === 'healthy') return;
    if (health === 'unhealthy' || (!State.Running && !State.Restarting) || Date.now() > deadline) {
      const probe = State.Health?.Log?.at(-1)?.Output?.trim() ?? '';
      throw new Error(
        `${name} did not turn healthy (status ${State.Status}, health ${health ?? 'none'}` +
          `${probe === '' ? '' : `, last probe: ${probe}`}):\n${await containerLogs(name, 40)}`,
      );
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Top-level input keys whose values differ. */
function changedKeys(a: Record<string, unknown>, b: Record<string, unknown>): string[] {
  return [...new Set([...Object.keys(a), ...Object.keys(b)])].filter(
    (k) => JSON.stringify(a[k]) !== JSON.stringify(b[k]),
  );
}

function replacesOn(r: PlannedResource, changed: string[]): boolean {
  return r.options.replaceOnChanges.some((k) => k === '*' || changed.includes(k));
}

function labelMap(labels: unknown): Record<string, string> {
  return Object.fromEntries(
    ((labels ?? []) as { label: string; value: string }[]).map((l) => [l.label, l.value]),
  );
}

function onlyKeys(r: PlannedResource, known: string[]): void {
  const unknown = Object.keys(r.inputs).filter((k) => !known.includes(k));
  if (unknown.length > 0)
    throw new Error(`${r.name}: ${r.type} inputs ${unknown.join(', ')} are not mapped by the deploy proof`);
}
