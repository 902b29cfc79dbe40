/**
 * Order and lifecycle as the engine receives them (recorded URNs, dependencies and inputs under the mocks): what
 * waits for what on `up` (and so goes first on `destroy`), and which changes replace a command or run its update.
 */
import { describe, expect, it } from 'vitest';
import { stackPlanOptions } from './fixtures.js';
import { type Plan, type PlannedResource, planStack } from './plan.js';

const CONTAINER = 'docker:index/container:Container';
const isCommand = (r: PlannedResource) =>
  r.type === 'command:remote:Command' || r.type === 'command:local:Command';

function one(plan: Plan, name: string, type?: string): PlannedResource {
  const found = plan.resources.filter((r) => r.name === name && (type === undefined || r.type === type));
  expect(
    found.map((r) => r.name),
    `exactly one ${name}`,
  ).toEqual([name]);
  return found[0]!;
}

/** Every resource `r` waits for, directly or through the resources it waits for. */
function waitsFor(plan: Plan, r: PlannedResource): Set<string> {
  const byUrn = new Map(plan.resources.map((x) => [x.urn, x]));
  const seen = new Set<string>();
  const visit = (urn: string) => {
    for (const dep of byUrn.get(urn)?.options.dependencies ?? []) {
      if (seen.has(dep)) continue;
      seen.add(dep);
      visit(dep);
    }
  };
  visit(r.urn);
  return seen;
}

describe('firewall before published ports', () => {
  for (const stack of ['prod', 'staging'] as const) {
    it(`${stack}: every container that publishes a port waits for the nftables table`, async () => {
      const plan = await planStack(await stackPlanOptions(stack));
      const nft = one(plan, 'firewall-nft');
      const publishing = plan.resources.filter(
        (r) => r.type === CONTAINER && Array.isArray(r.inputs.ports) && r.inputs.ports.length > 0,
      );
      expect(publishing.length).toBeGreaterThanOrEqual(2); // the API and the admin ports at least
      const missing = publishing.filter((r) => !r.options.dependencies.includes(nft.urn)).map((r) => r.name);
      expect(missing).toEqual([]);
      // And the firewall waits for none of them (no cycle: it goes first on up, last on destroy).
      const containers = new Set(plan.resources.filter((r) => r.type === CONTAINER).map((r) => r.urn));
      expect([...waitsFor(plan, nft)].filter((urn) => containers.has(urn))).toEqual([]);
    });
  }

  it('local (no firewall): no firewall resource and nothing waits for one', async () => {
    const plan = await planStack(await stackPlanOptions('local'));
    expect(plan.resources.filter((r) => r.name.startsWith('firewall'))).toEqual([]);
  });
});

describe('benchmarks and the network', () => {
  it('the timer waits for the Network resource it names', async () => {
    const plan = await planStack(await stackPlanOptions('staging'));
    const network = one(plan, 'chatmirror-staging', 'docker:index/network:Network');
    const timer = one(plan, 'benchmarks-timer');
    expect(timer.options.dependencies).toContain(network.urn);
    const files = Object.fromEntries(
      String(timer.inputs.stdin)
        .trim()
        .split('\n')
        .map((line) => line.split(' '))
        .map(([, name, b64]) => [name, Buffer.from(b64 ?? '', 'base64').toString('utf8')]),
    );
    expect(files['chatmirror-bench-staging.service']).toContain('--network chatmirror-staging');
  });
});

describe('Grafana admin password', () => {
  async function grafanaPlan(password: string) {
    const options = await stackPlanOptions('staging');
    options.config['chatmirror:grafanaAdminPassword'] = password;
    return planStack(options);
  }

  it('is set in the running container after it starts, from stdin only', async () => {
    const plan = await grafanaPlan('first password 1234');
    const grafana = one(plan, 'chatmirror-staging-grafana', CONTAINER);
    const reset = one(plan, 'monitoring-grafana-password');
    expect(reset.options.dependencies).toContain(grafana.urn);
    expect(reset.inputs.stdin).toBe('first password 1234');
    expect(reset.secretPaths).toContain('stdin');
    expect(String(reset.inputs.create)).toContain(
      "docker exec -i 'chatmirror-staging-grafana' grafana cli --homepath /usr/share/grafana admin reset-admin-password --password-from-stdin",
    );
    expect(reset.inputs.update).toBe(reset.inputs.create);
    expect(JSON.stringify([reset.inputs.create, reset.inputs.triggers ?? null])).not.toContain(
      'first password',
    );
  });

  it('a rotated password changes only its stdin, so the update runs on the existing volume', async () => {
    const before = one(await grafanaPlan('first password 1234'), 'monitoring-grafana-password');
    const after = one(await grafanaPlan('second password 5678'), 'monitoring-grafana-password');
    expect(after.inputs.stdin).toBe('second password 5678');
    expect({ ...after.inputs, stdin: '' }).toEqual({ ...before.inputs, stdin: '' });
  });
});

describe('host files move with their directory', () => {
  async function dataDirPlan(dataDir: string) {
    const options = await stackPlanOptions('staging');
    const target = options.config['chatmirror:target'] as Record<string, unknown>;
    options.config['chatmirror:target'] = { ...target, dataDir };
    return planStack(options);
  }

  it('a new dir is a new command (replace: the old delete removes the old paths, tls/server.key included)', async () => {
    const before = one(await dataDirPlan('/srv/chatmirror/staging'), 'service-files-write');
    const after = one(await dataDirPlan('/srv/cm/staging'), 'service-files-write');
    expect(before.inputs.triggers).toEqual(['/srv/chatmirror/staging/service']);
    expect(after.inputs.triggers).toEqual(['/srv/cm/staging/service']);
    expect(String(before.inputs.delete)).toContain("'/srv/chatmirror/staging/service/tls/server.key'");
    const plan = await dataDirPlan('/srv/cm/staging');
    const writers = plan.resources.filter((r) => isCommand(r) && r.name.endsWith('-files-write'));
    expect(writers.length).toBeGreaterThan(3);
    for (const w of writers)
      expect(w.inputs.triggers, w.name).toEqual([expect.stringMatching(/^\/srv\/cm\//)]);
  });
});

describe('images before containers', () => {
  it('every container waits for the RemoteImage of its image (component dependsOn does not reach children)', async () => {
    for (const stack of ['local', 'prod'] as const) {
      const plan = await planStack(await stackPlanOptions(stack));
      const pulls = plan.resources.filter((r) => r.type === 'docker:index/remoteImage:RemoteImage');
      for (const c of plan.resources.filter((r) => r.type === 'docker:index/container:Container')) {
        const pull = pulls.find((p) => p.inputs.name === c.inputs.image);
        expect(pull, `${stack}: the image of ${c.name}`).toBeDefined();
        expect(c.options.dependencies, `${stack}: ${c.name} waits for its image`).toContain(pull!.urn);
      }
    }
  });
});
