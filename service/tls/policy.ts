/**
 * The TLS versions and cipher suites the HTTPS server offers: Mozilla's "intermediate" configuration (v5.7),
 * i.e. TLS 1.3 plus TLS 1.2 with ECDHE/DHE key exchange and AEAD ciphers only (AES-GCM, ChaCha20-Poly1305).
 * No CBC suites (Lucky13-style padding oracles), no static RSA key exchange (no forward secrecy), nothing
 * below TLS 1.2. Applied when the server is created and to every reloaded secure context, since
 * setSecureContext builds a new one from only what it is given.
 */
export const TLS_POLICY = {
  minVersion: 'TLSv1.2',
  ciphers: [
    // TLS 1.3 (Node enables these by default; listed so that the whole policy is here).
    'TLS_AES_128_GCM_SHA256',
    'TLS_AES_256_GCM_SHA384',
    'TLS_CHACHA20_POLY1305_SHA256',
    // TLS 1.2, in Mozilla's order.
    'ECDHE-ECDSA-AES128-GCM-SHA256',
    'ECDHE-RSA-AES128-GCM-SHA256',
    'ECDHE-ECDSA-AES256-GCM-SHA384',
    'ECDHE-RSA-AES256-GCM-SHA384',
    'ECDHE-ECDSA-CHACHA20-POLY1305',
    'ECDHE-RSA-CHACHA20-POLY1305',
    'DHE-RSA-AES128-GCM-SHA256',
    'DHE-RSA-AES256-GCM-SHA384',
    'DHE-RSA-CHACHA20-POLY1305',
  ].join(':'),
  // Mozilla intermediate leaves the choice to the client (all suites are strong; mobile clients prefer ChaCha).
  honorCipherOrder: false,
} as const;
