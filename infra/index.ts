/**
 * Program entry (`main: infra/` in Pulumi.yaml): reads the stack config, gathers what only this machine can
 * know (its own facts for a local target, the model's size, local files), builds the environment and exports
 * its outputs. Everything else lives in program.ts and the components.
 */
import { readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as pulumi from '@pulumi/pulumi';
import { collectLocalFacts, collectRemoteFacts } from './host-capacity.js';
import { buildEnvironment, sshTargetOf } from './program.js';
import { readDashboards } from './render/grafana.js';
import { readStackConfig } from './stack-config.js';

const projectDir = rootDirectory();
const config = readStackConfig();
const local = config.target.kind === 'local';
const modelDir = resolve(projectDir, config.model.hostPath);
const ssh = sshTargetOf(config, projectDir);
// Gathered before anything is planned, during preview too, so an undersized host fails the preview. With the
// stack's name and data dir, so what an earlier `up` of this stack already put on the disk counts as its own.
const held = { name: pulumi.getStack(), dataDir: resolve(projectDir, config.target.dataDir) };
const facts =
  ssh === undefined
    ? await collectLocalFacts(config.capacity.dockerDataPath, held)
    : await collectRemoteFacts(ssh, config.capacity.dockerDataPath, held);

const outputs = buildEnvironment({
  stack: pulumi.getStack(),
  config,
  projectDir,
  readLocalFile,
  facts,
  ...(local && config.model.sizeBytes === undefined ? { modelBytes: manifestBytes(modelDir) } : {}),
  dashboards: readDashboards(),
});

export const endpoint = outputs.endpoint;
export const caCertificate = outputs.caCertificate;
export const monitoringUrls = outputs.monitoringUrls;
export const imageDigests = outputs.imageDigests;
export const imageDrift = outputs.imageDrift;
export const capacityReport = outputs.capacityReport;
export const containers = outputs.containers;

/** Where Pulumi.yaml is: the engine says so; without one (mocks), the folder above this file. */
function rootDirectory(): string {
  let root: string | undefined;
  try {
    root = pulumi.runtime.getRootDirectory();
  } catch {
    root = undefined;
  }
  return root || resolve(dirname(fileURLToPath(import.meta.url)), '..');
}

function readLocalFile(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Bytes of the files SHA256SUMS lists: what the engine loads. */
function manifestBytes(dir: string): number {
  const manifest = readLocalFile(join(dir, 'SHA256SUMS'));
  if (manifest === undefined) return 0; // the model check on the host reports the missing manifest
  return manifest
    .split('\n')
    .map((line) => /^[0-9a-f]{64} [ *](.+)$/.exec(line.trim())?.[1])
    .filter((name): name is string => name !== undefined)
    .reduce((sum, name) => sum + statSync(join(dir, name)).size, 0);
}
