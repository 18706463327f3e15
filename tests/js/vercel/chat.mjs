// Drives agentcast's POST /api/chat with the real AI SDK client: AbstractChat +
// DefaultChatTransport, exactly what useChat runs (useChat is AbstractChat with React state).
//
//   node chat.mjs <ai5|ai6> '<scenario JSON>'
//
// The scenario: {base, chatId, messages?, steps: [...]}, each step one of
//   {op: "send", text}                  sendMessage({text})
//   {op: "regenerate"}                  regenerate() the last answer
//   {op: "resume"}                      resumeStream() (GET /api/chat/{id}/stream)
//   {op: "stop", text, when}            send, then stop() once the answer shows `when`
//                                       ("text": some answer text, "tool": a tool part)
//   {op: "cancel", text}                send, then POST /runs/{messageId}/cancel once text shows
//   {op: "reload"}                      a new chat on the same id with the messages up to the
//                                       last user message (a page reload), for "resume"
// It prints one JSON object: every request's chunks and headers, the final messages and
// status, and every warning, error and schema failure, for the Python test to judge. Each
// chunk is also checked against ai@5.0.216's strict schema whatever the version driven.
import * as ai5 from "ai5";

const [version, scenarioText] = process.argv.slice(2);
const ai = version === "ai6" ? await import("ai6") : ai5;
const scenario = JSON.parse(scenarioText);

const report = { requests: [], warnings: [], errors: [], schemaErrors: [], finishes: [] };
for (const level of ["warn", "error"]) {
  console[level] = (...args) => report.warnings.push(`${level}: ${args.map(String).join(" ")}`);
}
process.on("unhandledRejection", (e) => report.warnings.push(`unhandled: ${e?.stack || e}`));

// A chat state like @ai-sdk/react's, with a hook to watch the messages change.
class State {
  constructor(messages = []) {
    this.messages = messages;
    this.status = "ready";
    this.error = undefined;
    this.watchers = [];
  }
  changed() {
    for (const watch of [...this.watchers]) watch(this.messages);
  }
  pushMessage = (message) => {
    this.messages = this.messages.concat(message);
    this.changed();
  };
  popMessage = () => {
    this.messages = this.messages.slice(0, -1);
    this.changed();
  };
  replaceMessage = (index, message) => {
    this.messages = [...this.messages.slice(0, index), message, ...this.messages.slice(index + 1)];
    this.changed();
  };
  snapshot = (value) => structuredClone(value);
}

// fetch that keeps a copy of each response's body, to check the raw SSE framing.
function recordingFetch(request) {
  return async (url, init) => {
    const response = await fetch(url, init);
    request.url = String(url);
    request.method = init?.method ?? "GET";
    request.status = response.status;
    request.headers = Object.fromEntries(response.headers.entries());
    if (!response.body) return response;
    const [mine, theirs] = response.body.tee();
    request.raw = "";
    request.bodyDone = (async () => {
      const decoder = new TextDecoder();
      try {
        for await (const piece of mine) request.raw += decoder.decode(piece, { stream: true });
      } catch (e) {
        request.cut = String(e?.name || e);
      }
    })();
    return new Response(theirs, response);
  };
}

function makeChat(id, messages) {
  const state = new State(messages);
  let request = null;
  const transport = new ai.DefaultChatTransport({
    api: `${scenario.base}/api/chat`,
    fetch: (url, init) => recordingFetch(request)(url, init),
  });
  const chat = new ai.AbstractChat({
    id,
    transport,
    state,
    onError: (error) => report.errors.push(String(error?.message ?? error)),
    onFinish: ({ message, isAbort, isError, finishReason }) =>
      report.finishes.push({ id: message.id, isAbort, isError, finishReason }),
  });
  const begin = (op) => {
    request = { op, raw: "" };
    report.requests.push(request);
    return request;
  };
  return { chat, state, begin };
}

const answerShows = (messages, when) => {
  const last = messages[messages.length - 1];
  if (!last || last.role !== "assistant") return false;
  return last.parts.some((p) =>
    when === "tool" ? p.type.startsWith("tool-") : p.type === "text" && p.text.length > 0,
  );
};

function once(state, when) {
  return new Promise((resolve) => {
    const watch = (messages) => {
      if (answerShows(messages, when)) {
        state.watchers = state.watchers.filter((w) => w !== watch);
        resolve(messages[messages.length - 1]);
      }
    };
    state.watchers.push(watch);
  });
}

let current = makeChat(scenario.chatId, scenario.messages ?? []);
for (const step of scenario.steps) {
  const { chat, state, begin } = current;
  const request = begin(step.op);
  if (step.op === "send") {
    await chat.sendMessage({ text: step.text });
  } else if (step.op === "regenerate") {
    await chat.regenerate();
  } else if (step.op === "resume") {
    await chat.resumeStream();
  } else if (step.op === "stop") {
    const shown = once(state, step.when ?? "text");
    const sent = chat.sendMessage({ text: step.text });
    await shown;
    await chat.stop();
    await sent;
  } else if (step.op === "cancel") {
    const shown = once(state, "text").then((message) =>
      fetch(`${scenario.base}/runs/${message.id}/cancel`, { method: "POST" }).then((r) => r.status),
    );
    await chat.sendMessage({ text: step.text });
    request.cancelStatus = await shown;
  } else if (step.op === "reload") {
    const messages = state.messages;
    let end = messages.length;
    while (end > 0 && messages[end - 1].role !== "user") end -= 1;
    current = makeChat(scenario.chatId, structuredClone(messages.slice(0, end)));
    report.requests.pop();
    continue;
  } else {
    throw new Error(`unknown step ${step.op}`);
  }
  if (request.bodyDone) await request.bodyDone;
  delete request.bodyDone;
  request.chatStatus = chat.status;
  request.chatError = chat.error ? String(chat.error.message) : null;
  request.chunks = await strictChunks(request.raw);
}

// Every `data:` message of the raw body: JSON chunks checked against ai@5.0.216's strict
// schema (unknown fields rejected), and the [DONE] terminators counted.
async function strictChunks(raw) {
  const chunks = [];
  const stream = new ReadableStream({
    start(controller) {
      controller.enqueue(new TextEncoder().encode(raw));
      controller.close();
    },
  });
  const parsed = ai5.parseJsonEventStream({ stream, schema: ai5.uiMessageChunkSchema });
  for await (const result of parsed) {
    if (result.success) chunks.push(result.value);
    else report.schemaErrors.push(`${JSON.stringify(result.rawValue)}: ${result.error.message}`);
  }
  return chunks;
}

report.messages = current.state.messages;
report.status = current.chat.status;
const validated = await ai.safeValidateUIMessages({ messages: report.messages });
if (!validated.success && report.messages.length) {
  report.schemaErrors.push(`messages: ${validated.error.message}`);
}
process.stdout.write(JSON.stringify(report));
