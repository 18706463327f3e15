// Checks SSE byte streams with @ag-ui/client's own pipeline, as HttpAgent.runAgent() runs it:
// the SSE parser (transformHttpEventStream), the schema enforcement (enforceEvents: every event
// parsed by @ag-ui/core's zod schemas, unknown material stripped WITH A WARNING), chunk
// expansion and verifyEvents (the ordering rules). Any warning or error fails the stream.
//
// Usage: node verify.mjs streams.json   (a JSON list of SSE texts, one per run)
// Prints one JSON line: [{ok, error, warnings, types}] in the same order.
import { readFileSync } from "node:fs";
import { Subject, lastValueFrom, toArray } from "rxjs";
import {
  enforceEvents,
  transformChunks,
  transformHttpEventStream,
  verifyEvents,
} from "@ag-ui/client";

const warnings = [];
for (const level of ["warn", "error"]) {
  console[level] = (...args) => warnings.push(`${level}: ${args.map(String).join(" ")}`);
}

const streams = JSON.parse(readFileSync(process.argv[2], "utf8"));
const encoder = new TextEncoder();
const results = [];
for (const text of streams) {
  warnings.length = 0;
  // Arbitrary chunk boundaries, as a network delivers them: every 7 bytes.
  const bytes = encoder.encode(text);
  const http = [{ type: "headers", status: 200, headers: new Headers({ "content-type": "text/event-stream" }) }];
  for (let at = 0; at < bytes.length; at += 7) http.push({ type: "data", data: bytes.slice(at, at + 7) });
  // The transport subscribes at once and its output is not replayed (as over a socket):
  // feed the bytes only once the pipeline is listening.
  const source = new Subject();
  const done = lastValueFrom(
    transformHttpEventStream(source).pipe(enforceEvents(), transformChunks(), verifyEvents(), toArray()),
  );
  for (const item of http) source.next(item);
  source.complete();
  try {
    const events = await done;
    results.push({ ok: warnings.length === 0, warnings: [...warnings], types: events.map((e) => e.type) });
  } catch (error) {
    results.push({ ok: false, error: String(error?.message ?? error), warnings: [...warnings] });
  }
}
process.stdout.write(JSON.stringify(results) + "\n");
