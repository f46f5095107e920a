import { Gauge, type Registry } from 'prom-client';
import type { Logger } from '../log/logger.js';
import type { Clock } from '../time/clock.js';
import { querySntp, serverName, type SntpServer } from '../time/sntp.js';

/**
 * Polls the policy's NTP server (`clock:`) and exports how far this host's clock is off. TOTP
 * accepts a code one 30 s step either side by default: a host more than 30 s off refuses good codes,
 * so past that every poll logs a warning. One process per host polls: a single gateway, or the
 * primary of `serve --workers N` (its workers share its clock and leave it to the primary).
 *
 * A gauge appears with its first value, not before: an offset of 0 before any answer would claim
 * a perfect clock. A failed poll sets only sync_success to 0; the offset keeps the last reading and
 * the last-sync timestamp shows its age.
 */

/** Past this offset TOTP codes fail (one 30 s step, the default window): the warning's threshold. */
export const MAX_CLOCK_OFFSET_SECONDS = 30;

export interface ClockWatchSettings {
  readonly server: SntpServer;
  readonly intervalMs: number;
  readonly timeoutMs: number;
}

export interface ClockWatch {
  /** Starts polling (at once), restarts with changed settings, or stops (undefined). */
  apply(settings: ClockWatchSettings | undefined): void;
  close(): void;
}

/** A gauge registered with its first value (see above), and unregistered when polling stops. */
function lateGauge(registry: Registry, name: string, help: string) {
  const gauge = new Gauge({ name, help, registers: [] });
  let registered = false;
  return {
    set(value: number): void {
      gauge.set(value);
      if (!registered) registry.registerMetric(gauge);
      registered = true;
    },
    remove(): void {
      if (registered) registry.removeSingleMetric(name);
      registered = false;
    },
  };
}

export function createClockWatch(deps: { readonly registry: Registry; readonly logger: Logger; readonly clock: Clock }): ClockWatch {
  const { registry, logger, clock } = deps;
  const gauges = {
    offset: lateGauge(
      registry,
      'mfa_gateway_clock_offset_seconds',
      "The NTP server's time minus this host's clock at the last successful poll (positive: the host is behind). TOTP codes fail past ±30 s.",
    ),
    lastSync: lateGauge(registry, 'mfa_gateway_clock_last_sync_timestamp_seconds', 'Unix time of the last NTP poll that got a valid answer.'),
    success: lateGauge(registry, 'mfa_gateway_clock_sync_success', 'Whether the last NTP poll got a valid answer (1) or not (0).'),
  };
  let current: ClockWatchSettings | undefined;
  let timer: NodeJS.Timeout | undefined;
  // Bumped by every apply/close: a poll still in flight from an older setting records nothing.
  let generation = 0;
  // The last reading was past the limit: the host's clock, whichever server said so.
  let offLimits = false;

  async function poll(settings: ClockWatchSettings, run: number): Promise<void> {
    const server = serverName(settings.server);
    try {
      const reading = await querySntp(settings.server, { timeoutMs: settings.timeoutMs, clock });
      if (run !== generation) return;
      const offset = reading.offsetSeconds;
      gauges.offset.set(offset);
      gauges.lastSync.set(clock() / 1000);
      gauges.success.set(1);
      if (Math.abs(offset) > MAX_CLOCK_OFFSET_SECONDS) {
        offLimits = true;
        logger.warn(
          { event: 'clock_offset', server, offset_seconds: offset },
          `this host's clock is ${Math.abs(offset).toFixed(1)} s ${offset > 0 ? 'behind' : 'ahead of'} the NTP server; TOTP codes fail past ${MAX_CLOCK_OFFSET_SECONDS} s: fix the host's time sync`,
        );
      } else if (offLimits) {
        offLimits = false;
        logger.info({ event: 'clock_offset_ok', server, offset_seconds: offset }, `this host's clock is within ${MAX_CLOCK_OFFSET_SECONDS} s of the NTP server again`);
      }
    } catch (error) {
      if (run !== generation) return;
      gauges.success.set(0);
      logger.warn({ event: 'clock_sync_failed', server, error: error instanceof Error ? error.message : String(error) }, 'the NTP server gave no valid answer; the clock offset is not known');
    }
  }

  function schedule(settings: ClockWatchSettings, run: number): void {
    // poll() catches everything it awaits: nothing here can reject unhandled.
    void poll(settings, run).then(() => {
      if (run !== generation) return;
      timer = setTimeout(() => schedule(settings, run), settings.intervalMs);
      timer.unref();
    });
  }

  function stop(): void {
    generation++;
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
  }

  return {
    apply(settings) {
      // A reload that leaves `clock:` alone keeps the schedule.
      if (JSON.stringify(settings) === JSON.stringify(current)) return;
      stop();
      current = settings;
      // Readings of another server, or of none, are not this setting's.
      for (const gauge of Object.values(gauges)) gauge.remove();
      if (settings !== undefined) schedule(settings, generation);
    },
    close() {
      stop();
      current = undefined;
    },
  };
}
