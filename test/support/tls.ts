import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, type ConnectionOptions, type TLSSocket } from 'node:tls';

export interface TestCertificate {
  readonly certFile: string;
  readonly keyFile: string;
  readonly fingerprint256: string;
}

/**
 * A self-signed certificate for localhost / 127.0.0.1 made by `openssl` into `dir` as
 * `<name>.crt` and `<name>.key`: an EC P-256 key by default, RSA 2048 when asked.
 */
export function makeCertificate(dir: string, name: string, kind: 'ec' | 'rsa' = 'ec'): TestCertificate {
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  const keyArgs = kind === 'ec' ? ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'] : ['-newkey', 'rsa:2048'];
  execFileSync(
    'openssl',
    ['req', '-x509', ...keyArgs, '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', `/CN=${name}`, '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'],
    { stdio: 'pipe' },
  );
  return { certFile, keyFile, fingerprint256: new X509Certificate(readFileSync(certFile)).fingerprint256 };
}

export type Handshake =
  | { readonly ok: true; readonly protocol: string | null; readonly cipher: string; readonly fingerprint256: string; readonly ticket: boolean }
  | { readonly ok: false; readonly code: string };

/** One TLS handshake with 127.0.0.1:port (certificate not verified: the tests compare fingerprints). */
export function handshake(port: number, options: ConnectionOptions = {}): Promise<Handshake> {
  return new Promise((resolve) => {
    const socket: TLSSocket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...options });
    socket.once('secureConnect', () => {
      // A TLS 1.3 ticket arrives just after the handshake; give it a moment before looking.
      setTimeout(() => {
        resolve({
          ok: true,
          protocol: socket.getProtocol(),
          cipher: socket.getCipher().name,
          fingerprint256: socket.getPeerX509Certificate()?.fingerprint256 ?? '',
          ticket: socket.getTLSTicket() !== undefined,
        });
        socket.destroy();
      }, 50);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve({ ok: false, code: error.code ?? error.message }));
  });
}
