/**
 * Live progress on a terminal: one line rewritten in place (carriage return, erase line). Anywhere else
 * (a pipe, a file, CI logs) each update is its own line, and only those that say something new are kept.
 */
export class LiveLine {
  private open = false;
  private last = '';

  constructor(private readonly out: NodeJS.WriteStream) {}

  private get tty(): boolean {
    return Boolean(this.out.isTTY);
  }

  /** Replaces the live line; `key` decides, off a terminal, whether it is new enough to print. */
  update(text: string, key = text): void {
    if (this.tty) {
      this.out.write(`\r\x1b[K${text}`);
      this.open = true;
    } else if (key !== this.last) {
      this.out.write(`${text}\n`);
    }
    this.last = key;
  }

  /** A line that stays (a step change): printed above the live line. */
  note(text: string): void {
    this.end();
    this.out.write(`${text}\n`);
  }

  end(): void {
    if (this.open) this.out.write('\n');
    this.open = false;
  }
}
