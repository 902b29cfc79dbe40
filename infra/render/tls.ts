/** Certificate subject alternative names and the certificate-expiry series for node-exporter's textfile collector. */
import { TLS_METRICS } from './metrics.js';

/** The name every replica answers to on the private network; Prometheus verifies the certificate against it. */
export const SERVICE_ALIAS = 'chatmirror';

export interface Sans {
  dnsNames: string[];
  ipAddresses: string[];
}

/**
 * Configured names first (the first one is the subject CN), then the public host and the in-network alias the
 * healthcheck, Prometheus and the benchmark use, so all of them verify the certificate instead of skipping it.
 */
export function certificateSans(o: { dnsNames: string[]; ipAddresses: string[]; publicHost?: string }): Sans {
  const unique = (values: string[]) => [...new Set(values.map((v) => v.toLowerCase()))];
  return {
    dnsNames: unique([...o.dnsNames, ...(o.publicHost ? [o.publicHost] : []), SERVICE_ALIAS]),
    ipAddresses: unique(o.ipAddresses),
  };
}

export function renderCertificateTextfile(o: { stack: string; notAfter: string }): string {
  const seconds = Math.floor(Date.parse(o.notAfter) / 1000);
  if (!Number.isFinite(seconds))
    throw new Error(`certificate notAfter ${JSON.stringify(o.notAfter)} is not a date`);
  return [
    `# HELP ${TLS_METRICS.notAfter} Expiry of the chatmirror server certificate (Unix time), written at deploy.`,
    `# TYPE ${TLS_METRICS.notAfter} gauge`,
    `${TLS_METRICS.notAfter}{stack="${o.stack}"} ${seconds}`,
    '',
  ].join('\n');
}
