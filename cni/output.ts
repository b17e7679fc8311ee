// The one place that writes to stdout: exactly once per process.
import { writeSync } from 'node:fs';

let written = false;

export function writeStdoutOnce(doc: unknown): void {
  if (written) throw new Error('stdout already written');
  written = true;
  const text = doc === undefined ? '' : JSON.stringify(doc) + '\n';
  if (text === '') return;
  // Synchronous so the document is complete before the process exits.
  let offset = 0;
  const buf = Buffer.from(text);
  while (offset < buf.length) {
    try {
      offset += writeSync(1, buf, offset);
    } catch (e) {
      // A non-blocking pipe that is full: wait for the reader rather than lose the document.
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
    }
  }
}
