/** Shared inputs for the infra tests: digests, tokens and secrets an operator would set per stack. */
import { createHash, generateKeyPairSync } from 'node:crypto';
import selfsigned from 'selfsigned';
import { loadStackFile, type PlanOptions } from './plan.js';

export const digest = (label: string) => `sha256:${createHash('sha256').update(label).digest('hex')}`;

export const DIGESTS = {
  service: `registry.example.com/chatmirror/service@${digest('service')}`,
  prometheus: `docker.io/prom/prometheus@${digest('prometheus')}`,
  nodeExporter: `docker.io/prom/node-exporter@${digest('node-exporter')}`,
  grafana: `docker.io/grafana/grafana@${digest('grafana')}`,
  alertmanager: `127.0.0.1:5000/chatmirror/alertmanager@${digest('alertmanager')}`,
  haproxy: `127.0.0.1:5000/chatmirror/haproxy@${digest('haproxy')}`,
  redis: `127.0.0.1:5000/chatmirror/redis@${digest('redis')}`,
};

export const DIGESTS_FILE = JSON.stringify({
  service: DIGESTS.service,
  prometheus: DIGESTS.prometheus,
  'node-exporter': { repository: 'docker.io/prom/node-exporter', digest: digest('node-exporter') },
  grafana: { ref: DIGESTS.grafana },
  alertmanager: DIGESTS.alertmanager,
  haproxy: DIGESTS.haproxy,
  redis: DIGESTS.redis,
});

export const METRICS_TOKEN = `cmk_prometheus_${'A'.repeat(43)}`;
export const BENCH_TOKEN = `cmk_bench_${'B'.repeat(43)}`;
export const GRAFANA_PASSWORD = 'correct horse battery staple';
export const QUOTA_STORE_PASSWORD = 'f3c1a9d0e8b7465a9c2d1e0f7a6b5c4d';
export const CLIENT_KEYS = [{ id: 'qa', hash: `sha256:${'c'.repeat(64)}`, scopes: ['chat', 'models:read'] }];
export const JWKS = JSON.stringify({
  keys: [{ kty: 'OKP', crv: 'Ed25519', x: 'abc', kid: 'k1', alg: 'EdDSA' }],
});

/** A certificate for chat.example.com, as the prod stack's tlsCertificate would be. */
export async function providedCertificate(): Promise<{ cert: string; key: string; ca: string }> {
  const pems = await selfsigned.generate([{ name: 'commonName', value: 'chat.example.com' }], {
    keySize: 2048,
    extensions: [
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: 'chat.example.com' },
          { type: 2, value: 'chatmirror' },
        ],
      },
    ],
  });
  return { cert: pems.cert, key: pems.private, ca: pems.cert };
}

export const SSH_KEY = generateKeyPairSync('ed25519')
  .privateKey.export({ type: 'pkcs8', format: 'pem' })
  .toString();

/** What README says to set per stack, on top of the stack file. */
export async function stackPlanOptions(stack: 'local' | 'staging' | 'prod'): Promise<PlanOptions> {
  const config: Record<string, unknown> = {
    ...loadStackFile(stack),
    'chatmirror:grafanaAdminPassword': GRAFANA_PASSWORD,
    'chatmirror:metricsToken': METRICS_TOKEN,
  };
  const secretKeys = ['chatmirror:grafanaAdminPassword', 'chatmirror:metricsToken'];
  if (stack !== 'local') {
    config['chatmirror:benchToken'] = BENCH_TOKEN;
    config['chatmirror:apiKeys'] = CLIENT_KEYS;
    secretKeys.push('chatmirror:benchToken', 'chatmirror:apiKeys');
  }
  if (stack === 'prod') {
    const pems = await providedCertificate();
    config['chatmirror:tlsCertificate'] = pems.cert;
    config['chatmirror:tlsCaCertificate'] = pems.ca;
    config['chatmirror:tlsPrivateKey'] = pems.key;
    secretKeys.push('chatmirror:tlsPrivateKey');
    // Two replicas share a Redis quota store.
    config['chatmirror:quotaStorePassword'] = QUOTA_STORE_PASSWORD;
    secretKeys.push('chatmirror:quotaStorePassword');
  }
  return {
    stack,
    config,
    secretKeys,
    files: {
      'images/digests.json': DIGESTS_FILE,
      'secrets/prod/jwks.json': JWKS,
      '.ssh/chatmirror-staging': SSH_KEY,
      '.ssh/chatmirror-prod': SSH_KEY,
    },
  };
}
