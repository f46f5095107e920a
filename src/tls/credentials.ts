/**
 * TLS for the public listener, the parts both the policy loader and the server need: checking a
 * certificate/key pair and the secure-context options (one function, so `check` validates exactly
 * what the listener will load). No I/O: the caller reads the files.
 */
import { createPrivateKey, X509Certificate, constants, type KeyObject } from 'node:crypto';
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import { inspect } from 'node:util';

export type TlsMinVersion = 'TLSv1.3' | 'TLSv1.2';

/**
 * TLS 1.3 suites first (Node's defaults: all forward-secret; naming none would switch TLS 1.3 off),
 * then for TLS 1.2 only ECDHE key exchange with AEAD ciphers: no static RSA, no CBC, no DHE.
 */
export const TLS_CIPHERS = [
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'TLS_AES_128_GCM_SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
].join(':');

/**
 * A checked certificate chain and its private key. The key is a private field: it stays out of
 * JSON, `inspect` and anything that walks the policy's properties (logs, deepFreeze, comparisons).
 */
export class TlsCredentials {
  /** The PEM chain as read, leaf first. */
  readonly cert: string;
  /** SHA-256 of the leaf certificate, `AB:CD:…`: what an operator compares after a rotation. */
  readonly fingerprint256: string;
  readonly subject: string;
  /** End of validity, unix milliseconds. */
  readonly validToMs: number;
  readonly #key: string;

  constructor(cert: string, key: string, leaf: X509Certificate) {
    this.cert = cert;
    this.#key = key;
    this.fingerprint256 = leaf.fingerprint256;
    this.subject = leaf.subject.replace(/\n/g, ', ');
    this.validToMs = Date.parse(leaf.validTo);
  }

  /** The private key PEM, for the secure context only. */
  privateKey(): string {
    return this.#key;
  }

  toJSON(): { fingerprint256: string; validToMs: number } {
    return { fingerprint256: this.fingerprint256, validToMs: this.validToMs };
  }

  [inspect.custom](): string {
    return `TlsCredentials { ${this.fingerprint256} }`;
  }
}

/** Why a pair was refused, and which of the two files it is about. Messages never quote the files. */
export interface TlsCredentialsProblem {
  readonly file: 'cert' | 'key';
  readonly message: string;
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----/;
// A passphrase would have to sit next to the key (in the policy or the environment): no safer than file permissions.
const ENCRYPTED_KEY: TlsCredentialsProblem = { file: 'key', message: 'holds an encrypted private key; give it unencrypted and protect the file (mode 0600)' };

/** An OpenSSL message reduced to its reason (`…::key values mismatch` → `key values mismatch`); nothing else of it. */
function opensslReason(error: unknown): string {
  const message = error instanceof Error ? error.message : '';
  const reason = /^error:[0-9A-F]+:[^:]*:[^:]*:([^:\n]+)/.exec(message)?.[1];
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return reason ?? code ?? 'unusable';
}

/**
 * Checks a PEM certificate chain and an unencrypted PEM private key as the listener would load
 * them: both parse, the key belongs to the first certificate, and OpenSSL accepts the pair with
 * the gateway's context options for `minVersion`.
 */
export function checkTlsCredentials(cert: string, key: string, minVersion: TlsMinVersion): TlsCredentials | TlsCredentialsProblem {
  if (!PEM_CERTIFICATE.test(cert)) return { file: 'cert', message: 'holds no PEM certificate (-----BEGIN CERTIFICATE-----)' };
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(cert);
  } catch (error) {
    return { file: 'cert', message: `holds a certificate that cannot be read (${opensslReason(error)})` };
  }
  // PKCS#8 and traditional PEM encryption; OpenSSL's own error for them only says "interrupted or cancelled".
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(key)) return ENCRYPTED_KEY;
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(key);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ERR_MISSING_PASSPHRASE' || code === 'ERR_OSSL_CRYPTO_INTERRUPTED_OR_CANCELLED') return ENCRYPTED_KEY;
    return { file: 'key', message: 'holds no usable PEM private key' };
  }
  if (!leaf.checkPrivateKey(privateKey)) return { file: 'key', message: 'is not the private key of the certificate (the first one in the certificate file)' };
  const credentials = new TlsCredentials(cert, key, leaf);
  try {
    createSecureContext(secureContextOptions(credentials, minVersion));
  } catch (error) {
    // E.g. a key too small for OpenSSL's security level, or a broken intermediate in the chain.
    return { file: 'cert', message: `is refused by OpenSSL with this key (${opensslReason(error)})` };
  }
  return credentials;
}

/**
 * The options of the listener's secure context, at start and at every reload (`setSecureContext`
 * replaces all of them, so they are always given whole).
 */
export function secureContextOptions(credentials: TlsCredentials, minVersion: TlsMinVersion): SecureContextOptions {
  return {
    cert: credentials.cert,
    key: credentials.privateKey(),
    minVersion,
    maxVersion: 'TLSv1.3',
    ciphers: TLS_CIPHERS,
    honorCipherOrder: true,
    // A TLS 1.2 session ticket carries the session's master secret under a ticket key that lives as
    // long as the process: whoever gets that key reads every recorded ticketed session. TLS 1.3
    // resumption still runs (EC)DHE, so tickets stay on when TLS 1.2 is off.
    ...(minVersion === 'TLSv1.2' ? { secureOptions: constants.SSL_OP_NO_TICKET } : {}),
  };
}
