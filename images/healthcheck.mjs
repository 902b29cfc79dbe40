/**
 * The image's HEALTHCHECK (copied to /app/healthcheck.mjs; exits 0 when healthy, 1 otherwise): GET /health on the
 * port the service listens on, read from the same configuration the service reads (file and CHATMIRROR_* env).
 *
 * Trust: the probe connects to loopback, where no name in a production certificate matches and where the
 * development certificate is self-signed, so neither the CA chain nor the host name can be checked usefully.
 * Instead it pins: the TLS handshake must present exactly the certificate in the service's own certFile (or the
 * development certificate in $CHATMIRROR_CACHE/dev-tls), compared by SHA-256 fingerprint before a byte of the
 * request is sent. Nothing secret is sent either way: /health needs no credential.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { loadConfig } from './service/config/load.js';

const TIMEOUT_MS = 4_000; // below the HEALTHCHECK --timeout of 5 s, so the probe reports why rather than being killed
const WILDCARD_HOSTS = new Set(['0.0.0.0', '::', '']);

function fail(reason) {
  process.stderr.write(`unhealthy: ${reason}\n`);
  process.exit(1);
}

function probe() {
  const { server } = loadConfig();
  const host = WILDCARD_HOSTS.has(server.host) ? '127.0.0.1' : server.host;
  const request = `GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`;
  let socket;
  if (server.tls.enabled) {
    const certFile = server.tls.certFile ?? join(server.tls.devCertDir, 'cert.pem');
    const expected = new X509Certificate(readFileSync(certFile)).fingerprint256;
    socket = tlsConnect({ host, port: server.port, rejectUnauthorized: false }, () => {
      const presented = socket.getPeerCertificate().fingerprint256;
      if (presented !== expected) {
        socket.destroy();
        fail(`the server presented certificate ${presented}, not the one in ${certFile} (${expected})`);
      }
      socket.write(request);
    });
  } else {
    socket = tcpConnect({ host, port: server.port }, () => socket.write(request));
  }
  let response = '';
  socket.setEncoding('latin1');
  socket.setTimeout(TIMEOUT_MS, () => {
    socket.destroy();
    fail(`no response from ${host}:${server.port} within ${TIMEOUT_MS} ms`);
  });
  socket.on('data', (chunk) => {
    response += chunk;
  });
  socket.on('error', (err) => fail(`${host}:${server.port}: ${err.message}`));
  socket.on('end', () => {
    const status = /^HTTP\/1\.[01] (\d{3})/.exec(response)?.[1];
    if (status !== '200') fail(`GET /health answered ${status ?? JSON.stringify(response.slice(0, 80))}`);
    process.exit(0);
  });
}

try {
  probe();
} catch (err) {
  fail(err.message);
}
