import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Reader, type CountryResponse } from 'maxmind';
import type { EventsConfig } from '../config/types.js';
import { isHeaderName } from '../request/header-name.js';
import { RAW_HEADERS, type RequestView } from '../request/view.js';

/**
 * Risk signals of one request: the client's country and a device hash. The country comes from a
 * configured header only when the socket peer is a trusted proxy (anyone else could write it), else
 * from a local MaxMind-format database by the client address. The device is the client's device-id
 * header or a fingerprint of User-Agent and Accept-Language, always hashed: the store keeps no raw
 * identifier.
 */

export interface Signals {
  /** ISO 3166-1 alpha-2, upper case. */
  readonly country?: string;
  /** 16 bytes of SHA-256, hex. */
  readonly device?: string;
}

const COUNTRY = /^[A-Za-z]{2}$/;

function header(raw: readonly string[] | undefined, name: string): string | undefined {
  if (raw === undefined) return undefined;
  for (let i = 0; i + 1 < raw.length; i += 2) if (isHeaderName(raw[i]!, name)) return raw[i + 1];
  return undefined;
}

function hashDevice(kind: 'id' | 'ua', value: string): string {
  return createHash('sha256').update(`${kind}\0${value}`).digest('hex').slice(0, 32);
}

export interface SignalReader {
  of(view: RequestView, config: EventsConfig['signals']): Signals;
}

export function createSignalReader(readFile: (path: string) => Buffer = readFileSync): SignalReader {
  // One reader per database file, opened on first use; a reload naming another file opens that one.
  const readers = new Map<string, Reader<CountryResponse>>();
  const seen = new WeakMap<RequestView, Signals>();
  const geo = (path: string): Reader<CountryResponse> => {
    let reader = readers.get(path);
    if (reader === undefined) readers.set(path, (reader = new Reader<CountryResponse>(readFile(path))));
    return reader;
  };
  return {
    of(view, config) {
      const cached = seen.get(view);
      if (cached !== undefined) return cached;
      let country: string | undefined;
      if (config.countryHeader !== undefined && view.peerTrusted) {
        const value = header(view[RAW_HEADERS], config.countryHeader)?.trim();
        if (value !== undefined && COUNTRY.test(value)) country = value.toUpperCase();
      }
      if (country === undefined && config.geoipDatabase !== undefined) {
        const found = geo(config.geoipDatabase).get(view.clientIp)?.country?.iso_code;
        if (found !== undefined && COUNTRY.test(found)) country = found.toUpperCase();
      }
      const id = header(view[RAW_HEADERS], config.deviceHeader)?.trim();
      const ua = header(view[RAW_HEADERS], 'user-agent');
      const device = id !== undefined && id !== '' ? hashDevice('id', id) : ua !== undefined ? hashDevice('ua', `${ua}\0${header(view[RAW_HEADERS], 'accept-language') ?? ''}`) : undefined;
      const signals: Signals = { ...(country !== undefined ? { country } : {}), ...(device !== undefined ? { device } : {}) };
      seen.set(view, signals);
      return signals;
    },
  };
}
