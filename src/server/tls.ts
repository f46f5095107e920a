/**
 * The public listener's TLS at run time: the certificate is swapped with `setSecureContext` (new
 * connections get the new one, open connections keep theirs), the certificate and key files are
 * watched, and the HSTS header follows the policy. A broken pair never gets here: the policy
 * loader checks it, so it is refused, logged and counted like any broken policy.
 */
import type { Server as HttpsServer, ServerOptions as HttpsServerOptions } from 'node:https';
import { createFileSetWatcher } from '../config/watch.js';
import type { GatewayPolicy, TlsConfig } from '../config/types.js';
import type { GatewayCore } from '../core/gateway-core.js';
import { secureContextOptions } from '../tls/credentials.js';
import { hstsHeaderValue } from '../tls/hsts.js';

/** A client that opens a connection and never finishes the handshake holds it this long at most (Node: 120 s). */
const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;

/** The TLS half of the public listener's `https.createServer` options (the HTTP half: publicServerOptions). */
export function tlsServerOptions(tls: TlsConfig): HttpsServerOptions {
  return { ...secureContextOptions(tls.credentials, tls.minVersion), handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS };
}

export interface ListenerTls {
  /** The Strict-Transport-Security value for this listener's responses, undefined when none is configured. */
  hsts(): string | undefined;
  close(): void;
}

function sameCredentials(a: TlsConfig, b: TlsConfig): boolean {
  return a.minVersion === b.minVersion && a.credentials.cert === b.credentials.cert && a.credentials.privateKey() === b.credentials.privateKey();
}

function certificateFields(tls: TlsConfig): Record<string, string | number> {
  return { fingerprint256: tls.credentials.fingerprint256, valid_to: new Date(tls.credentials.validToMs).toISOString(), min_version: tls.minVersion };
}

/**
 * Keeps `server` (created with `tlsServerOptions(initial)`) on the policy's certificate. `watch`:
 * also reload the policy when the certificate or key file changes.
 */
export function manageListenerTls(server: HttpsServer, core: GatewayCore, initial: TlsConfig, options: { readonly watch: boolean }): ListenerTls {
  const { logger } = core;
  let applied = initial;
  let hsts = initial.hsts !== undefined ? hstsHeaderValue(initial.hsts) : undefined;
  let watcher: { close(): void } | undefined;
  let watchedFiles = '';

  function watchFiles(tls: TlsConfig): void {
    if (!options.watch) return;
    const files = `${tls.certFile}\n${tls.keyFile}`;
    if (files === watchedFiles) return;
    watcher?.close();
    watchedFiles = files;
    // A changed file is reloaded through the whole policy, so it gets every check a start would.
    watcher = createFileSetWatcher({
      paths: [tls.certFile, tls.keyFile],
      onChange: () => void core.reload(),
      onError: (error) => logger.error({ event: 'tls_watch_failed', error: error.message }, 'watching the TLS files failed'),
    });
  }

  core.onPolicy((next: GatewayPolicy) => {
    const tls = next.listen.tls;
    if (tls === undefined) {
      logger.warn({ event: 'config_reload_partial' }, 'listen.tls can be removed only with a restart; keeping the running certificate');
      return;
    }
    if (!sameCredentials(tls, applied)) {
      // Throws only on what the loader's check already passed; a throw refuses the policy.
      server.setSecureContext(secureContextOptions(tls.credentials, tls.minVersion));
      logger.info({ event: 'tls_reloaded', ...certificateFields(tls) }, 'TLS certificate reloaded; open connections keep the previous one');
    }
    applied = tls;
    hsts = tls.hsts !== undefined ? hstsHeaderValue(tls.hsts) : undefined;
    watchFiles(tls);
  });
  watchFiles(initial);
  logger.info({ event: 'tls_loaded', ...certificateFields(initial) }, 'TLS on the public listener');

  return {
    hsts: () => hsts,
    close() {
      watcher?.close();
      watcher = undefined;
    },
  };
}
