import type { Logger } from '../log/logger.js';
import type { Invalidation, InvalidationBus } from '../store/types.js';

/**
 * Telling every replica what changed. `announce` applies a change to this process's caches at
 * once (so this replica never serves what it just ended) and publishes it for the others; each
 * replica subscribes and applies what it hears, its own echoes included (harmless: forgetting twice).
 */
export type Announce = (change: Invalidation) => void;

export interface AnnouncerOptions {
  readonly bus?: InvalidationBus | undefined;
  readonly logger: Logger;
  /** Forgets what a change makes stale in this process (nothing, for a process without caches). */
  readonly apply: (change: Invalidation) => void;
}

/** Applies each change here, then publishes it; what others publish is the caller's to subscribe to. */
export function createAnnouncer(options: AnnouncerOptions): Announce {
  const { bus, logger, apply } = options;
  return (change) => {
    apply(change);
    // Best effort: a lost message is bounded by the caches' own short TTL.
    bus?.publish(change).catch((error: unknown) => {
      logger.warn({ event: 'invalidation_not_published', kind: change.kind, error: error instanceof Error ? error.message : String(error) }, 'other replicas will notice this change when their caches expire');
    });
  };
}
