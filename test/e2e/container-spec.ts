/**
 * A docker.Container's captured inputs (@pulumi/docker 5's property names) as the Engine API's ContainerCreate
 * body, field by field the way the provider maps them (memory in MiB → bytes, cpus → NanoCpus, durations →
 * nanoseconds, networksAdvanced → EndpointsConfig). Every input key must be understood: one this file does not
 * know fails the proof instead of being dropped, so what runs is exactly what the program declared.
 */

type Inputs = Record<string, unknown>;

export interface ContainerSpec {
  name: string;
  body: Record<string, unknown>;
  /** Networks to connect after create, beyond the first (the API takes one endpoint at create on 1.41). */
  extraNetworks: { name: string; aliases: string[] }[];
  /** `wait`: the create counts as done only once the container is healthy, within waitTimeout seconds. */
  wait: { healthy: boolean; timeoutSeconds: number };
  /** Seconds `docker stop` gives the container before SIGKILL on delete (destroyGraceSeconds). */
  stopGraceSeconds: number;
}

const MiB = 1024 * 1024;

/** "15s", "1m30s", "500ms" → nanoseconds (Go's time.ParseDuration units, as the provider parses them). */
export function durationNs(value: unknown): number {
  const text = String(value);
  const units: Record<string, number> = { ns: 1, us: 1e3, µs: 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
  let total = 0;
  let rest = text;
  while (rest.length > 0) {
    const match = /^([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)/.exec(rest);
    if (match === null) throw new Error(`not a duration: ${JSON.stringify(text)}`);
    total += Number(match[1]) * (units[match[2] ?? 's'] ?? 0);
    rest = rest.slice(match[0].length);
  }
  return Math.round(total);
}

export function containerSpec(inputs: Inputs): ContainerSpec {
  const seen = new Set<string>();
  const take = <T>(key: string): T | undefined => {
    seen.add(key);
    return inputs[key] as T | undefined;
  };
  const name = take<string>('name');
  if (name === undefined) throw new Error('docker.Container without a name');
  const host: Record<string, unknown> = {};
  const body: Record<string, unknown> = { Image: take<string>('image'), Labels: {}, HostConfig: host };

  const command = take<string[]>('command');
  if (command !== undefined) body.Cmd = command;
  const entrypoints = take<string[]>('entrypoints');
  if (entrypoints !== undefined) body.Entrypoint = entrypoints;
  const envs = take<string[]>('envs');
  if (envs !== undefined) body.Env = envs;
  const user = take<string>('user');
  if (user !== undefined) body.User = user;
  const workingDir = take<string>('workingDir');
  if (workingDir !== undefined) body.WorkingDir = workingDir;
  const stopSignal = take<string>('stopSignal');
  if (stopSignal !== undefined) body.StopSignal = stopSignal;
  const stopTimeout = take<number>('stopTimeout');
  if (stopTimeout !== undefined) body.StopTimeout = stopTimeout;
  for (const label of take<{ label: string; value: string }[]>('labels') ?? [])
    (body.Labels as Record<string, string>)[label.label] = label.value;

  if (take<boolean>('readOnly')) host.ReadonlyRootfs = true;
  const capabilities = take<{ drops?: string[]; adds?: string[] }>('capabilities');
  if (capabilities?.drops !== undefined) host.CapDrop = capabilities.drops;
  if (capabilities?.adds !== undefined) host.CapAdd = capabilities.adds;
  const securityOpts = take<string[]>('securityOpts');
  if (securityOpts !== undefined) host.SecurityOpt = securityOpts;
  const memory = take<number>('memory');
  if (memory !== undefined) host.Memory = memory * MiB;
  const memorySwap = take<number>('memorySwap');
  if (memorySwap !== undefined) host.MemorySwap = memorySwap * MiB;
  const cpus = take<string>('cpus');
  if (cpus !== undefined) host.NanoCpus = Math.round(Number(cpus) * 1e9);
  const ulimits = take<{ name: string; soft: number; hard: number }[]>('ulimits');
  if (ulimits !== undefined)
    host.Ulimits = ulimits.map((u) => ({ Name: u.name, Soft: u.soft, Hard: u.hard }));
  const logDriver = take<string>('logDriver');
  const logOpts = take<Record<string, string>>('logOpts');
  if (logDriver !== undefined) host.LogConfig = { Type: logDriver, Config: logOpts ?? {} };
  const tmpfs = take<Record<string, string>>('tmpfs');
  if (tmpfs !== undefined) host.Tmpfs = tmpfs;
  const init = take<boolean>('init');
  if (init !== undefined) host.Init = init;
  const pidMode = take<string>('pidMode');
  if (pidMode !== undefined) host.PidMode = pidMode;
  const ipcMode = take<string>('ipcMode');
  if (ipcMode !== undefined) host.IpcMode = ipcMode;
  const shmSize = take<number>('shmSize');
  if (shmSize !== undefined) host.ShmSize = shmSize * MiB;
  const groupAdds = take<string[]>('groupAdds');
  if (groupAdds !== undefined) host.GroupAdd = groupAdds;

  const mounts = take<Record<string, unknown>[]>('mounts') ?? [];
  host.Mounts = mounts.map((m) => {
    const mount: Record<string, unknown> = {
      Type: m.type,
      Source: m.source,
      Target: m.target,
      ReadOnly: Boolean(m.readOnly),
    };
    const bind = m.bindOptions as { propagation?: string } | undefined;
    if (bind?.propagation !== undefined) mount.BindOptions = { Propagation: bind.propagation };
    const tmpfsOptions = m.tmpfsOptions as { sizeBytes?: number; mode?: number } | undefined;
    if (tmpfsOptions !== undefined)
      mount.TmpfsOptions = { SizeBytes: tmpfsOptions.sizeBytes, Mode: tmpfsOptions.mode };
    return mount;
  });

  const ports = take<{ internal: number; external: number; ip?: string; protocol?: string }[]>('ports') ?? [];
  if (ports.length > 0) {
    const exposed: Record<string, object> = {};
    const bindings: Record<string, { HostIp: string; HostPort: string }[]> = {};
    for (const p of ports) {
      const key = `${p.internal}/${p.protocol ?? 'tcp'}`;
      exposed[key] = {};
      bindings[key] = [...(bindings[key] ?? []), { HostIp: p.ip ?? '0.0.0.0', HostPort: String(p.external) }];
    }
    body.ExposedPorts = exposed;
    host.PortBindings = bindings;
  }

  const networkMode = take<string>('networkMode');
  if (networkMode !== undefined) host.NetworkMode = networkMode;
  const networks = (take<{ name: string; aliases?: string[] }[]>('networksAdvanced') ?? []).map((n) => ({
    name: n.name,
    aliases: n.aliases ?? [],
  }));
  const first = networks.find((n) => n.name === networkMode) ?? networks[0];
  if (first !== undefined)
    body.NetworkingConfig = { EndpointsConfig: { [first.name]: { Aliases: first.aliases } } };

  const restart = take<string>('restart');
  const maxRetryCount = take<number>('maxRetryCount');
  if (restart !== undefined)
    host.RestartPolicy = {
      Name: restart,
      ...(maxRetryCount === undefined ? {} : { MaximumRetryCount: maxRetryCount }),
    };

  const healthcheck = take<Record<string, unknown>>('healthcheck');
  if (healthcheck !== undefined) {
    const known = new Set(['tests', 'interval', 'timeout', 'retries', 'startPeriod', 'startInterval']);
    const unknown = Object.keys(healthcheck).filter((k) => !known.has(k));
    if (unknown.length > 0) throw new Error(`${name}: healthcheck.${unknown.join(', ')} not mapped`);
    body.Healthcheck = {
      Test: healthcheck.tests,
      ...(healthcheck.interval === undefined ? {} : { Interval: durationNs(healthcheck.interval) }),
      ...(healthcheck.timeout === undefined ? {} : { Timeout: durationNs(healthcheck.timeout) }),
      ...(healthcheck.retries === undefined ? {} : { Retries: healthcheck.retries }),
      ...(healthcheck.startPeriod === undefined ? {} : { StartPeriod: durationNs(healthcheck.startPeriod) }),
      // Engine API 1.44+ only: sent as declared, so a program that declares it against 1.41 fails here as it
      // did against the real daemon.
      ...(healthcheck.startInterval === undefined
        ? {}
        : { StartInterval: durationNs(healthcheck.startInterval) }),
    };
  }

  const wait = take<boolean>('wait') ?? false;
  const waitTimeout = take<number>('waitTimeout') ?? 60;
  const destroyGrace = take<number>('destroyGraceSeconds');
  // Provider bookkeeping with no daemon-side effect.
  for (const key of ['mustRun', 'start', 'attach', 'logs', 'rm', 'keepLocally']) take(key);

  const unknown = Object.keys(inputs).filter((key) => !seen.has(key));
  if (unknown.length > 0)
    throw new Error(
      `${name}: docker.Container inputs ${unknown.join(', ')} are not mapped by the deploy proof`,
    );
  return {
    name,
    body,
    extraNetworks: networks.filter((n) => n !== first),
    wait: { healthy: wait, timeoutSeconds: waitTimeout },
    stopGraceSeconds: destroyGrace ?? stopTimeout ?? 10,
  };
}
