/**
 * A self-signed certificate so that `chatmirror serve` speaks HTTPS out of the box. It is a development aid, not
 * a CA: clients trust it by pinning the file (`curl --cacert cert.pem`), and production configs name their own
 * certFile/keyFile.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { generate } from 'selfsigned';

/** Names the certificate must cover: every way a local client spells loopback. */
export const DEV_CERT_HOSTS = ['localhost', '127.0.0.1', '::1'] as const;
export const DEV_CERT_VALIDITY_DAYS = 30; // days: short, since it is regenerated for free
export const DEV_CERT_MIN_REMAINING_MS = 24 * 60 * 60 * 1000; // 1 day: renew before clients see it expire
const BACKDATE_MS = 5 * 60 * 1000; // 5 minutes, so a client whose clock runs slightly behind still accepts it
const DAY_MS = 24 * 60 * 60 * 1000;

export interface DevCertificate {
  certFile: string;
  keyFile: string;
  /** True when this call wrote a new pair, false when a still-valid one was reused. */
  generated: boolean;
}

export async function ensureDevCertificate(dir: string): Promise<DevCertificate> {
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  if (await isReusable(certFile, keyFile)) return { certFile, keyFile, generated: false };

  const now = Date.now();
  const pems = await generate([{ name: 'commonName', value: 'localhost' }], {
    // P-256: as widely supported as RSA-2048 for TLS, and generated in milliseconds rather than a second.
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate: new Date(now - BACKDATE_MS),
    notAfterDate: new Date(now + DEV_CERT_VALIDITY_DAYS * DAY_MS),
    extensions: [
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'keyUsage', digitalSignature: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
          { type: 7, ip: '::1' },
        ],
      },
    ],
  });
  // 0700 directory, 0600 key: the key is a secret even if only for development.
  await mkdir(dir, { recursive: true, mode: 0o700 });
  // Key first: a certificate reloader that sees the new cert also finds its key in place.
  await writeAtomically(keyFile, pems.private, 0o600);
  await writeAtomically(certFile, pems.cert, 0o644);
  return { certFile, keyFile, generated: true };
}

/** The existing pair parses, matches, covers the loopback names and has at least a day left. */
async function isReusable(certFile: string, keyFile: string): Promise<boolean> {
  try {
    const cert = new X509Certificate(await readFile(certFile));
    const key = createPrivateKey(await readFile(keyFile));
    const now = Date.now();
    return (
      cert.checkPrivateKey(key) &&
      Date.parse(cert.validFrom) <= now &&
      Date.parse(cert.validTo) - now >= DEV_CERT_MIN_REMAINING_MS &&
      DEV_CERT_HOSTS.every((host) => (isIP(host) ? cert.checkIP(host) : cert.checkHost(host)) !== undefined)
    );
  } catch {
    // Missing, unreadable or not PEM: a fresh pair replaces it.
    return false;
  }
}

/**
 * Write-then-rename: readers never see a half-written file, and the mode applies even when replacing a file
 * that was created with looser permissions (writeFile's mode only applies on creation).
 */
async function writeAtomically(file: string, content: string, mode: number): Promise<void> {
  const temp = `${file}.${process.pid}.tmp`;
  await writeFile(temp, content, { mode });
  await chmod(temp, mode); // in case a stale temp file from a crashed run was reused
  await rename(temp, file);
}
