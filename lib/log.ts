// JSON-lines logging to stderr and, when configured, to a 0600 log file. Never stdout.
import { openSync, closeSync, constants } from 'node:fs';
import { writeAll } from './atomic-file.ts';

export type Level = 'debug' | 'info' | 'warn' | 'error';
const RANK: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** A line to stderr with one write(2): no stream machinery to set up on every plugin start
 *  (process.stderr costs ~2 ms to create). A closed or full stderr loses the line, never the call. */
function toStderr(line: string): void {
  try {
    writeAll(2, line);
  } catch { /* nowhere left to say it */ }
}

export class Logger {
  private fields: Record<string, unknown> = {};
  constructor(
    private level: Level = 'info',
    private file: string | null = null,
    private readonly clock: () => Date = () => new Date(),
  ) {}

  configure(level: Level, file: string | null): void {
    this.level = level in RANK ? level : 'info';
    this.file = file;
  }

  with(fields: Record<string, unknown>): void {
    Object.assign(this.fields, fields);
  }

  log(level: Level, msg: string, extra: Record<string, unknown> = {}): void {
    if (RANK[level] < RANK[this.level]) return;
    const line = JSON.stringify({ ts: this.clock().toISOString(), level, msg, ...this.fields, ...extra }) + '\n';
    toStderr(line);
    if (this.file) this.toFile(line);
  }

  /** Appends to the log file, opened per line (a rotated file is picked up) and created 0600.
   *  An unusable one (a directory, a FIFO nobody reads, a full or read-only disk, a NUL in its
   *  name) never fails the call: stderr has the line, and says once why the file has not. */
  private toFile(line: string): void {
    try {
      const fd = openSync(this.file!, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NONBLOCK | constants.O_NOCTTY, 0o600);
      try {
        writeAll(fd, line);
      } finally {
        closeSync(fd);
      }
    } catch (e) {
      const file = this.file;
      this.file = null;
      toStderr(JSON.stringify({ ts: this.clock().toISOString(), level: 'warn', msg: 'log file unusable, logging to stderr only', logFile: file, error: (e as Error).message }) + '\n');
    }
  }

  debug(msg: string, extra?: Record<string, unknown>): void { this.log('debug', msg, extra); }
  info(msg: string, extra?: Record<string, unknown>): void { this.log('info', msg, extra); }
  warn(msg: string, extra?: Record<string, unknown>): void { this.log('warn', msg, extra); }
  error(msg: string, extra?: Record<string, unknown>): void { this.log('error', msg, extra); }
}
