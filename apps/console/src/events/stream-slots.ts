import { Inject, Injectable } from '@nestjs/common';
import { ErrorCode, FlexmigError } from '@flexmig/contracts';
import { CONSOLE_CONFIG, type ConsoleConfig } from '../config';

/** The cap on live streams served at once (SSE_MAX_STREAMS): each holds a connection and a consumer. */
@Injectable()
export class StreamSlots {
  private open = 0;

  constructor(@Inject(CONSOLE_CONFIG) private readonly config: Pick<ConsoleConfig, 'maxStreams'>) {}

  get inUse(): number {
    return this.open;
  }

  /** Takes a slot, or refuses with 503 (retryable); the returned function gives it back, once. */
  take(): () => void {
    if (this.open >= this.config.maxStreams) {
      throw new FlexmigError(
        ErrorCode.Unavailable,
        `this console already serves ${this.config.maxStreams} live streams (SSE_MAX_STREAMS): retry in a moment, or close a stream you no longer read`,
        { reason: 'too-many-streams', limit: this.config.maxStreams },
      );
    }
    this.open++;
    let released = false;
    return () => {
      if (!released) this.open--;
      released = true;
    };
  }
}
