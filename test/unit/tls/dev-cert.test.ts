import { createPrivateKey, X509Certificate } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generate } from 'selfsigned';
import { afterAll, describe, expect, it } from 'vitest';
import { DEV_CERT_VALIDITY_DAYS, ensureDevCertificate } from '../../../service/tls/dev-cert.js';

const root = mkdtempSync(join(tmpdir(), 'chatmirror-devcert-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let dirCount = 0;
const freshDir = () => join(root, `d${dirCount++}`, 'dev-tls');
const DAY_MS = 24 * 60 * 60 * 1000;

function readCert(file: string): X509Certificate {
  return new X509Certificate(readFileSync(file));
}

/** Plants a certificate in `dir` as if an earlier run had left it there. */
async function plant(dir: string, options: { validForMs: number; host?: string }): Promise<string> {
  const now = Date.now();
  const pems = await generate([{ name: 'commonName', value: options.host ?? 'localhost' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    notBeforeDate: new Date(now - DAY_MS),
    notAfterDate: new Date(now + options.validForMs),
    extensions: [
      {
        name: 'subjectAltName',
        altNames:
          options.host === undefined
            ? [
                { type: 2, value: 'localhost' },
                { type: 7, ip: '127.0.0.1' },
                { type: 7, ip: '::1' },
              ]
            : [{ type: 2, value: options.host }],
      },
    ],
  });
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'cert.pem'), pems.cert);
  writeFileSync(join(dir, 'key.pem'), pems.private);
  return new X509Certificate(pems.cert).fingerprint256;
}

describe('ensureDevCertificate', () => {
  it('generates a 30-day self-signed loopback certificate with a private key file', async () => {
    const dir = freshDir();
    const result = await ensureDevCertificate(dir);
    expect(result).toEqual({
      certFile: join(dir, 'cert.pem'),
      keyFile: join(dir, 'key.pem'),
      generated: true,
    });

    const cert = readCert(result.certFile);
    expect(cert.checkHost('localhost')).toBe('localhost');
    expect(cert.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(cert.checkIP('::1')).toBeDefined();
    expect(cert.subjectAltName).toContain('DNS:localhost');
    expect(cert.subjectAltName).toContain('IP Address:127.0.0.1');
    expect(cert.subjectAltName).toMatch(/IP Address:(::1|0:0:0:0:0:0:0:1)/);
    expect(cert.checkHost('example.com')).toBeUndefined();
    expect(cert.ca).toBe(false);
    // Self-signed: issuer is subject and its own key verifies the signature.
    expect(cert.issuer).toBe(cert.subject);
    expect(cert.verify(cert.publicKey)).toBe(true);
    expect(cert.checkPrivateKey(createPrivateKey(readFileSync(result.keyFile)))).toBe(true);
    const key = createPrivateKey(readFileSync(result.keyFile));
    expect(key.asymmetricKeyType).toBe('ec');
    expect(key.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');

    const lifetimeDays = (Date.parse(cert.validTo) - Date.now()) / DAY_MS;
    expect(lifetimeDays).toBeGreaterThan(DEV_CERT_VALIDITY_DAYS - 0.01);
    expect(lifetimeDays).toBeLessThanOrEqual(DEV_CERT_VALIDITY_DAYS);
    expect(Date.parse(cert.validFrom)).toBeLessThanOrEqual(Date.now());

    expect(statSync(result.keyFile).mode & 0o777).toBe(0o600);
  });

  it('reuses a pair that is still valid for more than a day', async () => {
    const dir = freshDir();
    const first = await ensureDevCertificate(dir);
    const fingerprint = readCert(first.certFile).fingerprint256;
    const second = await ensureDevCertificate(dir);
    expect(second.generated).toBe(false);
    expect(readCert(second.certFile).fingerprint256).toBe(fingerprint);

    const dir2 = freshDir();
    const planted = await plant(dir2, { validForMs: 2 * DAY_MS });
    expect((await ensureDevCertificate(dir2)).generated).toBe(false);
    expect(readCert(join(dir2, 'cert.pem')).fingerprint256).toBe(planted);
  });

  it('regenerates a certificate with less than a day left', async () => {
    const dir = freshDir();
    const old = await plant(dir, { validForMs: 12 * 60 * 60 * 1000 });
    const result = await ensureDevCertificate(dir);
    expect(result.generated).toBe(true);
    const cert = readCert(result.certFile);
    expect(cert.fingerprint256).not.toBe(old);
    expect(Date.parse(cert.validTo) - Date.now()).toBeGreaterThan((DEV_CERT_VALIDITY_DAYS - 1) * DAY_MS);
  });

  it('regenerates a certificate that does not cover the loopback names', async () => {
    const dir = freshDir();
    await plant(dir, { validForMs: 10 * DAY_MS, host: 'example.com' });
    expect((await ensureDevCertificate(dir)).generated).toBe(true);
    expect(readCert(join(dir, 'cert.pem')).checkIP('127.0.0.1')).toBe('127.0.0.1');
  });

  it('regenerates when the key does not match or a file is not PEM, and tightens the key mode', async () => {
    const dir = freshDir();
    await ensureDevCertificate(dir);
    const other = freshDir();
    await ensureDevCertificate(other);
    writeFileSync(join(dir, 'key.pem'), readFileSync(join(other, 'key.pem')));
    chmodSync(join(dir, 'key.pem'), 0o644);
    const mismatched = await ensureDevCertificate(dir);
    expect(mismatched.generated).toBe(true);
    expect(
      readCert(mismatched.certFile).checkPrivateKey(createPrivateKey(readFileSync(mismatched.keyFile))),
    ).toBe(true);
    expect(statSync(mismatched.keyFile).mode & 0o777).toBe(0o600);

    writeFileSync(join(dir, 'cert.pem'), 'not a certificate');
    expect((await ensureDevCertificate(dir)).generated).toBe(true);
  });
});
