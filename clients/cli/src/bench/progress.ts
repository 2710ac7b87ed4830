/**
 * Progress of the phases on stderr: a cli-progress bar per phase on a terminal; otherwise one line
 * per finished phase (logs and CI stay readable).
 */
import { MultiBar, Presets, type SingleBar } from "cli-progress";

/** One phase's progress. */
export interface Task {
  update(done: number): void;
  /** Ends the bar (or prints the line) with a short summary. */
  done(summary: string): void;
}

export class Progress {
  private readonly multi: MultiBar | undefined;

  constructor(tty = process.stderr.isTTY === true) {
    this.multi = tty
      ? new MultiBar(
          {
            format: "{name} |{bar}| {value}/{total} {unit} | {rate}/s | {secs} s {summary}",
            hideCursor: true,
            clearOnComplete: false,
            stopOnComplete: false,
            etaBuffer: 50,
          },
          Presets.shades_classic,
        )
      : undefined;
  }

  /** Starts the progress of a task of `total` units. */
  start(name: string, total: number, unit = "records"): Task {
    const started = performance.now();
    const label = name.padEnd(34).slice(0, 34);
    const bar: SingleBar | undefined = this.multi?.create(Math.max(1, total), 0, {
      name: label,
      unit,
      rate: "0",
      secs: "0.0",
      summary: "",
    });
    let last = 0;
    let current = 0;
    const fields = (done: number) => {
      const secs = (performance.now() - started) / 1000;
      return {
        rate: secs > 0 ? Math.round(done / secs).toLocaleString("en-US") : "0",
        secs: secs.toFixed(1),
      };
    };
    return {
      update(done: number) {
        current = done;
        const now = performance.now();
        if (bar === undefined || now - last < 100) return;
        last = now;
        bar.update(done, fields(done));
      },
      done(summary: string) {
        if (bar !== undefined) {
          bar.update(current, { ...fields(current), summary });
          bar.stop();
        } else {
          process.stderr.write(`${name}: ${summary}\n`);
        }
      },
    };
  }

  /** A line of text above the bars (or on stderr). */
  log(line: string): void {
    if (this.multi) this.multi.log(`${line}\n`);
    else process.stderr.write(`${line}\n`);
  }

  stop(): void {
    this.multi?.stop();
  }
}
