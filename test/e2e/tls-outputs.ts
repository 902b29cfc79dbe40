/**
 * Real outputs for the @pulumi/tls resources the program declares (PrivateKey, SelfSignedCert, CertRequest,
 * LocallySignedCert), computed from their captured inputs the way the provider documents them, so the files the
 * deploy proof writes hold a working CA, key and certificate chain instead of the unit tests' fake PEMs. The TLS
 * provider cannot be downloaded here; this is the one provider whose work happens on the operator's machine, with
 * no daemon to ask, so it is computed (with @peculiar/x509 over WebCrypto) rather than created on dockerd.
 */
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

type CryptoKeyPair = webcrypto.CryptoKeyPair;
type CryptoKey = webcrypto.CryptoKey;

type Inputs = Record<string, unknown>;

const HOUR_MS = 3_600_000;
const keyPairs = new Map<string, CryptoKeyPair>();
const csrs = new Map<string, x509.Pkcs10CertificateRequest>();

function algorithmOf(inputs: Inputs): webcrypto.RsaHashedKeyGenParams | webcrypto.EcKeyGenParams {
  if (inputs.algorithm === 'RSA')
    return {
      name: 'RSASSA-PKCS1-v1_5',
      modulusLength: Number(inputs.rsaBits ?? 2048),
      publicExponent: new Uint8Array([1, 0, 1]),
      hash: 'SHA-256',
    };
  if (inputs.algorithm === 'ECDSA') {
    const curve = String(inputs.ecdsaCurve ?? 'P224');
    return { name: 'ECDSA', namedCurve: curve.replace(/^P/, 'P-') };
  }
  throw new Error(`tls PrivateKey: algorithm ${String(inputs.algorithm)} is not handled by the deploy proof`);
}

function signingAlgorithm(keys: CryptoKeyPair): { name: string; hash: string } {
  return keys.privateKey.algorithm.name === 'ECDSA'
    ? { name: 'ECDSA', hash: 'SHA-256' }
    : { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
}

function keysFor(pem: unknown, resource: string): CryptoKeyPair {
  const keys = keyPairs.get(String(pem));
  if (keys === undefined) throw new Error(`tls ${resource}: its private key was not created by this capture`);
  return keys;
}

function distinguishedName(subject: unknown): string {
  const s = (subject ?? {}) as Record<string, string | undefined>;
  const parts: string[] = [];
  const escapeValue = (v: string) => v.replace(/([,+="\\<>;#])/g, '\\$1');
  if (s.commonName) parts.push(`CN=${escapeValue(s.commonName)}`);
  if (s.organization) parts.push(`O=${escapeValue(s.organization)}`);
  if (s.organizationalUnit) parts.push(`OU=${escapeValue(s.organizationalUnit)}`);
  if (s.country) parts.push(`C=${escapeValue(s.country)}`);
  return parts.join(', ');
}

const KEY_USAGES: Record<string, number> = {
  digital_signature: x509.KeyUsageFlags.digitalSignature,
  key_encipherment: x509.KeyUsageFlags.keyEncipherment,
  cert_signing: x509.KeyUsageFlags.keyCertSign,
  crl_signing: x509.KeyUsageFlags.cRLSign,
};
const EXTENDED_USAGES: Record<string, string> = {
  server_auth: x509.ExtendedKeyUsage.serverAuth,
  client_auth: x509.ExtendedKeyUsage.clientAuth,
};

function usageExtensions(allowed: unknown): x509.Extension[] {
  const uses = (allowed ?? []) as string[];
  const unknown = uses.filter((u) => KEY_USAGES[u] === undefined && EXTENDED_USAGES[u] === undefined);
  if (unknown.length > 0)
    throw new Error(`tls: allowedUses ${unknown.join(', ')} not handled by the deploy proof`);
  const flags = uses.reduce((sum, u) => sum | (KEY_USAGES[u] ?? 0), 0);
  const extended = uses.flatMap((u) => (EXTENDED_USAGES[u] === undefined ? [] : [EXTENDED_USAGES[u]]));
  return [
    ...(flags === 0 ? [] : [new x509.KeyUsagesExtension(flags, true)]),
    ...(extended.length === 0 ? [] : [new x509.ExtendedKeyUsageExtension(extended)]),
  ];
}

function serial(): string {
  return Buffer.from(webcrypto.getRandomValues(new Uint8Array(16)))
    .toString('hex')
    .replace(/^[89a-f]/, '1');
}

function validity(inputs: Inputs): { notBefore: Date; notAfter: Date } {
  const notBefore = new Date(Date.now() - 60_000);
  return {
    notBefore,
    notAfter: new Date(notBefore.getTime() + Number(inputs.validityPeriodHours) * HOUR_MS),
  };
}

async function pkcs8Pem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  return `-----BEGIN PRIVATE KEY-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END PRIVATE KEY-----\n`;
}

const memo = new Map<string, Promise<Inputs | undefined>>();

/**
 * The provider's computed outputs for one tls resource; undefined for any other type. Unchanged inputs give the
 * same outputs, as the provider's state would on a second `up`: a second capture (a config change) keeps the
 * stack's CA, keys and certificates.
 */
export function tlsOutputs(type: string, inputs: Inputs): Promise<Inputs | undefined> {
  if (!type.startsWith('tls:')) return Promise.resolve(undefined);
  const key = `${type}\n${JSON.stringify(inputs)}`;
  let outputs = memo.get(key);
  if (outputs === undefined) {
    outputs = computeTlsOutputs(type, inputs);
    memo.set(key, outputs);
  }
  return outputs;
}

async function computeTlsOutputs(type: string, inputs: Inputs): Promise<Inputs | undefined> {
  switch (type) {
    case 'tls:index/privateKey:PrivateKey': {
      const keys = (await webcrypto.subtle.generateKey(algorithmOf(inputs), true, [
        'sign',
        'verify',
      ])) as CryptoKeyPair;
      const privateKeyPem = await pkcs8Pem(keys.privateKey);
      keyPairs.set(privateKeyPem, keys);
      return { privateKeyPem, privateKeyPemPkcs8: privateKeyPem, publicKeyPem: '' };
    }
    case 'tls:index/selfSignedCert:SelfSignedCert': {
      const keys = keysFor(inputs.privateKeyPem, 'SelfSignedCert');
      const { notBefore, notAfter } = validity(inputs);
      const cert = await x509.X509CertificateGenerator.createSelfSigned({
        serialNumber: serial(),
        name: distinguishedName(inputs.subject),
        notBefore,
        notAfter,
        keys,
        signingAlgorithm: signingAlgorithm(keys),
        extensions: [
          new x509.BasicConstraintsExtension(Boolean(inputs.isCaCertificate), undefined, true),
          ...usageExtensions(inputs.allowedUses),
          await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
        ],
      });
      return {
        certPem: `${cert.toString('pem')}\n`,
        validityStartTime: notBefore.toISOString(),
        validityEndTime: notAfter.toISOString(),
      };
    }
    case 'tls:index/certRequest:CertRequest': {
      const keys = keysFor(inputs.privateKeyPem, 'CertRequest');
      const names = [
        ...((inputs.dnsNames ?? []) as string[]).map((value) => ({ type: 'dns' as const, value })),
        ...((inputs.ipAddresses ?? []) as string[]).map((value) => ({ type: 'ip' as const, value })),
      ];
      const csr = await x509.Pkcs10CertificateRequestGenerator.create({
        name: distinguishedName(inputs.subject),
        keys,
        signingAlgorithm: signingAlgorithm(keys),
        extensions: names.length === 0 ? [] : [new x509.SubjectAlternativeNameExtension(names)],
      });
      const certRequestPem = `${csr.toString('pem')}\n`;
      csrs.set(certRequestPem, csr);
      return { certRequestPem };
    }
    case 'tls:index/locallySignedCert:LocallySignedCert': {
      const csr = csrs.get(String(inputs.certRequestPem));
      if (csr === undefined)
        throw new Error('tls LocallySignedCert: its request was not created by this capture');
      const caKeys = keysFor(inputs.caPrivateKeyPem, 'LocallySignedCert');
      const ca = new x509.X509Certificate(String(inputs.caCertPem));
      const { notBefore, notAfter } = validity(inputs);
      const sanRaw = csr.getExtension('2.5.29.17');
      const san = sanRaw === null ? null : new x509.SubjectAlternativeNameExtension(sanRaw.rawData);
      const cert = await x509.X509CertificateGenerator.create({
        serialNumber: serial(),
        subject: csr.subject,
        issuer: ca.subject,
        notBefore,
        notAfter,
        publicKey: csr.publicKey,
        signingKey: caKeys.privateKey,
        signingAlgorithm: signingAlgorithm(caKeys),
        extensions: [
          new x509.BasicConstraintsExtension(false, undefined, true),
          ...usageExtensions(inputs.allowedUses),
          ...(san === null ? [] : [san]),
          await x509.AuthorityKeyIdentifierExtension.create(caKeys.publicKey),
        ],
      });
      return { certPem: `${cert.toString('pem')}\n`, validityEndTime: notAfter.toISOString() };
    }
    default:
      return undefined;
  }
}
