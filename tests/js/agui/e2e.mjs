// The real AG-UI client against agentcast's POST /agui: @ag-ui/client's HttpAgent.runAgent(),
// which parses every event with @ag-ui/core's zod schemas and checks the stream with
// verifyEvents. Any console.warn / console.error from the client (a stripped unknown field, an
// event applied to nothing) fails the scenario.
//
// Usage: node e2e.mjs '{"offline": URL, "reasoning": URL, "stuck": URL, "failing": URL, "graph": URL}'
// Prints one JSON object: scenario name -> {ok, error?, warnings}.
import { HttpAgent } from "@ag-ui/client";

const servers = JSON.parse(process.argv[2]);
const warnings = [];
for (const level of ["warn", "error"]) {
  console[level] = (...args) => warnings.push(`${level}: ${args.map(String).join(" ")}`);
}

const CAT_ANSWER =
  "The cat is hiding **under the bed**. Items located there: socks, a pair of shoes and some dust bunnies.";
let counter = 0;
const id = (what) => `${what}-${process.pid}-${++counter}`;

function check(condition, message) {
  if (!condition) throw new Error(message);
}

/** Run one user turn on `agent`; return the events the client applied and what it resolved. */
async function turn(agent, prompt, { subscriber = {}, runId = id("run"), resume } = {}) {
  if (prompt !== undefined) agent.addMessage({ id: id("user"), role: "user", content: prompt });
  const events = [];
  const outcome = {};
  const result = await agent.runAgent(
    { runId, ...(resume ? { resume } : {}) },
    {
      ...subscriber,
      onEvent: ({ event }) => void events.push(event),
      onRunFinishedEvent: (params) => void (outcome.finished = params),
      onRunErrorEvent: ({ event }) => void (outcome.error = event),
    },
  );
  const run = events.filter((e) => e.type === "RUN_STARTED" || e.type === "RUN_FINISHED");
  for (const e of run) {
    check(e.threadId === agent.threadId && e.runId === runId, `ids not echoed: ${JSON.stringify(e)}`);
  }
  return { events, outcome, result, runId };
}

/** The text of the agent's own (not a subagent's) assistant messages, and the last one. */
const answers = (agent) =>
  agent.messages.filter((m) => m.role === "assistant" && !m.subagentRunId && m.content);
const lastAnswer = (agent) => answers(agent).at(-1)?.content;

const agentFor = (server, config = {}) =>
  new HttpAgent({ url: `${servers[server]}/agui`, threadId: id("thread"), ...config });

const scenarios = {
  async plain_text() {
    const agent = agentFor("offline");
    const { outcome, result } = await turn(agent, "My name is Carol.");
    check(outcome.finished?.outcome === "success", "not a success");
    check(lastAnswer(agent).startsWith("Nice to meet you, Carol!"), lastAnswer(agent));
    check(result.result === lastAnswer(agent), "RUN_FINISHED.result is the answer");
    check(result.newMessages.every((m) => m.role === "assistant"), "only the answer is new");
  },

  async one_tool_call() {
    const agent = agentFor("offline");
    const { events } = await turn(agent, "What is 25 * 4?");
    const calls = agent.messages.flatMap((m) => m.toolCalls ?? []);
    check(calls.length === 1 && calls[0].function.name === "multiply", JSON.stringify(calls));
    check(JSON.parse(calls[0].function.arguments).a === 25, calls[0].function.arguments);
    const result = agent.messages.find((m) => m.role === "tool");
    check(result.toolCallId === calls[0].id && result.content === "100", JSON.stringify(result));
    check(lastAnswer(agent) === "25 * 4 = **100**.", lastAnswer(agent));
    const order = events.map((e) => e.type);
    check(order.indexOf("TOOL_CALL_END") < order.indexOf("TOOL_CALL_RESULT"), "result after end");
  },

  async two_parallel_tool_calls() {
    const agent = agentFor("offline");
    const { events } = await turn(agent, "What is 2+3 and 4*5?");
    const withCalls = agent.messages.filter((m) => m.toolCalls?.length);
    check(withCalls.length === 1 && withCalls[0].toolCalls.length === 2, "one message, two calls");
    check(withCalls[0].content === "", "the tool-calling message has empty content");
    const types = events.map((e) => `${e.type}:${e.toolCallId ?? ""}`);
    const [first, second] = withCalls[0].toolCalls.map((c) => c.id);
    check(
      types.indexOf(`TOOL_CALL_START:${second}`) < types.indexOf(`TOOL_CALL_END:${first}`),
      "the second call starts while the first is still open",
    );
    check(lastAnswer(agent) === "2 + 3 = **5** and 4 * 5 = **20**.", lastAnswer(agent));
  },

  async cat_hiding_nested_llm() {
    const agent = agentFor("offline");
    const subagents = [];
    const { events } = await turn(agent, "What items are located where the cat is hiding?", {
      subscriber: { onSubagentStartedEvent: ({ event }) => void subagents.push(event) },
    });
    check(subagents.length === 1 && subagents[0].name === "get_items", JSON.stringify(subagents));
    const items = agent.messages.find((m) => m.subagentRunId === subagents[0].subagentRunId);
    check(items?.content === "socks, a pair of shoes and some dust bunnies", JSON.stringify(items));
    const call = agent.messages.flatMap((m) => m.toolCalls ?? []).find((c) => c.function.name === "get_items");
    check(subagents[0].parentToolCallId === call.id, "the subagent names its tool call");
    // The nested LLM's tokens are never answer text: the answer is exactly the agent's.
    check(lastAnswer(agent) === CAT_ANSWER, lastAnswer(agent));
    check(answers(agent).every((m) => !m.content.startsWith("socks")), "nested text leaked");
    check(events.some((e) => e.type === "SUBAGENT_FINISHED"), "the subagent finished");
    check(events.some((e) => e.type === "CUSTOM" && e.name === "lookup"), "the tool's custom event");
  },

  async three_turns_on_one_thread() {
    const agent = agentFor("offline");
    await turn(agent, "My name is Alice.");
    await turn(agent, "What is (3 + 4) * 5?"); // right after: never refused as busy
    check(lastAnswer(agent) === "(3 + 4) * 5 = **35**.", lastAnswer(agent));
    await turn(agent, "What's my name?");
    check(lastAnswer(agent) === "Your name is Alice.", lastAnswer(agent));
    const response = await fetch(`${servers.offline}/sessions/${agent.threadId}`);
    const saved = (await response.json()).messages;
    check(saved.filter((m) => m.role === "user").length === 3, "every turn is kept on the thread");
  },

  async client_held_history_on_a_fresh_thread() {
    const agent = agentFor("offline", {
      initialMessages: [
        { id: id("m"), role: "user", content: "My name is Bob." },
        { id: id("m"), role: "assistant", content: "Nice to meet you, Bob!" },
      ],
    });
    await turn(agent, "What's my name?");
    check(lastAnswer(agent) === "Your name is Bob.", lastAnswer(agent));
  },

  async reasoning() {
    const agent = agentFor("reasoning");
    const { events } = await turn(agent, "What is 2+3?");
    const types = events.map((e) => e.type);
    for (const kind of ["REASONING_START", "REASONING_MESSAGE_START", "REASONING_MESSAGE_CONTENT", "REASONING_MESSAGE_END", "REASONING_END"]) {
      check(types.includes(kind), `no ${kind}`);
    }
    const thoughts = agent.messages.filter((m) => m.role === "reasoning");
    check(thoughts.length >= 1 && thoughts[0].content.length > 0, "reasoning messages kept");
    check(lastAnswer(agent) === "2 + 3 = **5**.", lastAnswer(agent));
    // The reasoning messages go back with the next run, and are accepted.
    await turn(agent, "What is 6 / 3?");
    check(lastAnswer(agent) === "6 / 3 = **2**.", lastAnswer(agent));
  },

  async cancelled_run() {
    const agent = agentFor("stuck");
    const runId = id("run");
    let cancelled;
    const { outcome } = await turn(agent, "go", {
      runId,
      subscriber: {
        onTextMessageContentEvent: () => {
          cancelled ??= fetch(`${servers.stuck}/runs/${runId}/cancel`, { method: "POST" });
        },
      },
    });
    check((await (await cancelled).json()).status === "cancelling", "the cancel was accepted");
    check(outcome.finished?.outcome === "cancelled", `outcome ${JSON.stringify(outcome)}`);
    check(lastAnswer(agent) === "Hel", "the partial answer stays");
  },

  async errored_run() {
    const agent = agentFor("failing");
    const { outcome } = await turn(agent, "go");
    check(outcome.error?.message === "the model provider failed: boom", JSON.stringify(outcome));
    check(typeof outcome.error.code === "string" && outcome.error.code.length > 0, "a code");
    check(outcome.finished === undefined, "no RUN_FINISHED after RUN_ERROR");
  },

  async graph_interrupt_then_resume() {
    const agent = agentFor("graph");
    const { outcome } = await turn(agent, "Book me a trip");
    check(outcome.finished?.outcome === "interrupt", JSON.stringify(outcome.finished?.outcome));
    check(agent.pendingInterrupts.length === 1, "one pending interrupt");
    const [pending] = agent.pendingInterrupts;
    const resume = [{ interruptId: pending.id, status: "resolved", payload: "Lisbon" }];
    const second = await turn(agent, undefined, { resume });
    check(second.outcome.finished?.outcome === "success", "the resumed run succeeded");
    check(second.result.result === "Booked a trip to Lisbon.", JSON.stringify(second.result));
    check(agent.pendingInterrupts.length === 0, "nothing pending any more");
  },
};

const only = process.argv[3] ? process.argv[3].split(",") : Object.keys(scenarios);
const report = {};
for (const name of only) {
  warnings.length = 0;
  try {
    await scenarios[name]();
    report[name] = { ok: warnings.length === 0, warnings: [...warnings] };
  } catch (error) {
    report[name] = { ok: false, error: String(error?.stack ?? error), warnings: [...warnings] };
  }
}
process.stdout.write(JSON.stringify(report) + "\n");
