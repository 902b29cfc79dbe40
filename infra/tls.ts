/**
 * Tls: the server certificate. Either a per-stack CA (its own key and self-signed certificate) issues a server
 * certificate with the configured SANs and validity — renewed by the first `pulumi up` within renewBeforeDays
 * of expiry — or a provided certificate, key and CA come from config (the key as a secret). Either way the CA is
 * an output, for clients and for Prometheus.
 */
import { X509Certificate } from 'node:crypto';
import * as pulumi from '@pulumi/pulumi';
import * as tls from '@pulumi/tls';

export interface TlsArgs {
  mode: 'ca' | 'provided';
  stack: string;
  organization: string;
  dnsNames: string[];
  ipAddresses: string[];
  validityDays: number;
  renewBeforeDays: number;
  caValidityDays: number;
  keyAlgorithm: 'ECDSA' | 'RSA';
  /** mode provided: PEM chain, key (secret) and issuing CA. */
  provided?: { certPem: string; keyPem: pulumi.Input<string>; caPem: string };
}

const HOURS_PER_DAY = 24;

export class Tls extends pulumi.ComponentResource {
  readonly caCertPem: pulumi.Output<string>;
  /** Server certificate followed by the CA: what the service serves. */
  readonly certChainPem: pulumi.Output<string>;
  readonly keyPem: pulumi.Output<string>;
  /** RFC 3339 expiry of the server certificate. */
  readonly notAfter: pulumi.Output<string>;

  constructor(name: string, args: TlsArgs, opts: pulumi.ComponentResourceOptions = {}) {
    super('chatmirror:index:Tls', name, {}, opts);
    if (args.dnsNames.length === 0 && args.ipAddresses.length === 0)
      throw new Error(`Tls ${name}: args.dnsNames and args.ipAddresses are both empty`);
    if (args.mode === 'provided' && args.provided === undefined)
      throw new Error(`Tls ${name}: args.provided is required when args.mode is provided`);
    if (args.mode === 'ca' && args.renewBeforeDays >= args.validityDays)
      throw new Error(`Tls ${name}: args.renewBeforeDays must be below args.validityDays`);

    if (args.mode === 'provided' && args.provided !== undefined) {
      const { certPem, caPem } = args.provided;
      const leaf = new X509Certificate(certPem);
      // A provided certificate must cover the names clients and Prometheus use; say which one it misses.
      for (const dns of args.dnsNames) {
        if (leaf.checkHost(dns) === undefined)
          throw new Error(
            `Tls ${name}: the provided certificate does not cover DNS name ${dns} (args.dnsNames)`,
          );
      }
      this.caCertPem = pulumi.output(caPem);
      this.certChainPem = pulumi.output(certPem);
      this.keyPem = pulumi.secret(args.provided.keyPem);
      this.notAfter = pulumi.output(new Date(leaf.validTo).toISOString());
    } else {
      const algorithm = args.keyAlgorithm;
      const keyArgs =
        algorithm === 'ECDSA' ? { algorithm, ecdsaCurve: 'P256' } : { algorithm, rsaBits: 3072 };
      const caKey = new tls.PrivateKey(`${name}-ca-key`, keyArgs, { parent: this });
      const ca = new tls.SelfSignedCert(
        `${name}-ca`,
        {
          privateKeyPem: caKey.privateKeyPem,
          isCaCertificate: true,
          subject: { commonName: `chatmirror ${args.stack} CA`, organization: args.organization },
          validityPeriodHours: args.caValidityDays * HOURS_PER_DAY,
          earlyRenewalHours: Math.min(args.caValidityDays, 30) * HOURS_PER_DAY,
          allowedUses: ['cert_signing', 'crl_signing', 'digital_signature'],
        },
        { parent: this },
      );
      const serverKey = new tls.PrivateKey(`${name}-server-key`, keyArgs, { parent: this });
      const request = new tls.CertRequest(
        `${name}-server-csr`,
        {
          privateKeyPem: serverKey.privateKeyPem,
          subject: {
            commonName: args.dnsNames[0] ?? args.ipAddresses[0] ?? 'chatmirror',
            organization: args.organization,
          },
          dnsNames: args.dnsNames,
          ipAddresses: args.ipAddresses,
        },
        { parent: this },
      );
      const server = new tls.LocallySignedCert(
        `${name}-server`,
        {
          certRequestPem: request.certRequestPem,
          caPrivateKeyPem: caKey.privateKeyPem,
          caCertPem: ca.certPem,
          validityPeriodHours: args.validityDays * HOURS_PER_DAY,
          // Within this window of expiry, the next `pulumi up` replaces the certificate (and the service reloads it).
          earlyRenewalHours: args.renewBeforeDays * HOURS_PER_DAY,
          allowedUses: ['digital_signature', 'key_encipherment', 'server_auth'],
        },
        { parent: this },
      );
      this.caCertPem = ca.certPem;
      this.certChainPem = pulumi.interpolate`${server.certPem}${ca.certPem}`;
      this.keyPem = pulumi.secret(serverKey.privateKeyPem);
      this.notAfter = server.validityEndTime;
    }
    this.registerOutputs({
      caCertPem: this.caCertPem,
      certChainPem: this.certChainPem,
      notAfter: this.notAfter,
    });
  }
}
