// Reads UI message stream bodies (one JSON line each: {body, errors}) and checks each the way
// the AI SDK's clients read it:
//   - every chunk against ai@5.0.216's strict chunk schema (unknown fields rejected);
//   - for ai 5 and ai 6: DefaultChatTransport's parsing and readUIMessageStream, which fail
//     on a chunk out of order (a delta of a part never started, a tool output of no call);
//     the only errors allowed are the stream's own `error` chunks (`errors`);
//   - the message they build, with safeValidateUIMessages.
// Prints {count, failures: [...]}.
import * as ai5 from "ai5";
import * as ai6 from "ai6";
import { createInterface } from "node:readline";

const failures = [];
const problem = (index, what) => failures.push({ index, what: String(what).slice(0, 600) });
for (const level of ["warn", "error"]) {
  console[level] = (...args) => problem(-1, `console.${level}: ${args.join(" ")}`);
}

const bytes = (text) =>
  new ReadableStream({
    start(controller) {
      controller.enqueue(new TextEncoder().encode(text));
      controller.close();
    },
  });

let count = 0;
for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  const { body, errors } = JSON.parse(line);
  const index = count++;
  for await (const result of ai5.parseJsonEventStream({
    stream: bytes(body),
    schema: ai5.uiMessageChunkSchema,
  })) {
    if (!result.success) problem(index, `ai5 strict schema: ${result.error.message}`);
  }
  for (const [name, ai] of [["ai5", ai5], ["ai6", ai6]]) {
    const seen = [];
    const stream = new ai.DefaultChatTransport().processResponseStream(bytes(body));
    let last;
    try {
      for await (const message of ai.readUIMessageStream({
        stream,
        onError: (error) => seen.push(String(error?.message ?? error)),
      })) {
        last = message;
      }
    } catch (error) {
      seen.push(String(error?.message ?? error));
    }
    const unexpected = seen.filter((e) => !errors.includes(e));
    if (unexpected.length) problem(index, `${name}: ${unexpected.join("; ")}`);
    if (last && last.parts.length) {
      const checked = await ai.safeValidateUIMessages({ messages: [{ ...last, role: "assistant" }] });
      if (!checked.success) problem(index, `${name} message: ${checked.error.message}`);
    }
  }
}
process.stdout.write(JSON.stringify({ count, failures }));
