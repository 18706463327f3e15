// A minimal AG-UI chat: HttpAgent holds the conversation and posts it to agentcast's
// POST /agui with every run; the page redraws agent.messages whenever they change.
// ?server=http://127.0.0.1:8000 picks the agentcast server, ?key=... sends an API key.
import { HttpAgent } from "@ag-ui/client";

const params = new URLSearchParams(location.search);
const server = params.get("server") ?? "http://127.0.0.1:8000";
const key = params.get("key");

const agent = new HttpAgent({
  url: `${server}/agui`,
  headers: key ? { Authorization: `Bearer ${key}` } : {},
});

const $ = (id) => document.getElementById(id);
$("url").textContent = agent.url;

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// Results and a subagent's messages are drawn under the tool call they belong to: each
// SUBAGENT_STARTED names the tool call whose work it is.
const toolCallOf = new Map(); // subagentRunId -> parentToolCallId

function render(messages) {
  const results = new Map(messages.filter((m) => m.role === "tool").map((m) => [m.toolCallId, m]));
  const bySubagent = new Map();
  for (const m of messages.filter((m) => m.subagentRunId)) {
    bySubagent.set(m.subagentRunId, [...(bySubagent.get(m.subagentRunId) ?? []), m]);
  }
  const list = $("messages");
  list.replaceChildren();
  for (const message of messages) {
    if (message.subagentRunId || message.role === "tool") continue;
    if (message.role === "user") {
      const row = element("div", "message user");
      row.dataset.testid = "user-message";
      row.append(element("span", "", message.content));
      list.append(row);
    } else if (message.role === "reasoning") {
      list.append(Object.assign(element("div", "message reasoning", message.content), { title: "reasoning" }));
    } else if (message.role === "assistant") {
      for (const call of message.toolCalls ?? []) {
        const tool = element("div", "message tool");
        tool.dataset.testid = "tool-call";
        tool.dataset.toolName = call.function.name;
        tool.append(element("code", "", `${call.function.name}(${call.function.arguments})`));
        for (const [subagent, inner] of bySubagent) {
          if (toolCallOf.get(subagent) !== call.id) continue;
          for (const m of inner) if (m.content) tool.append(element("div", "subagent", m.content));
        }
        const result = results.get(call.id);
        if (result) tool.append(element("div", "result", `→ ${result.content}`));
        list.append(tool);
      }
      if (message.content) {
        const answer = element("div", "message assistant", message.content);
        answer.dataset.testid = "answer";
        list.append(answer);
      }
    }
  }
}

agent.subscribe({
  onSubagentStartedEvent: ({ event }) => void toolCallOf.set(event.subagentRunId, event.parentToolCallId),
  onMessagesChanged: ({ messages }) => render(messages),
  onRunFinishedEvent: ({ outcome }) => void ($("status").textContent = outcome),
  onRunErrorEvent: ({ event }) => void ($("status").textContent = `error: ${event.message}`),
});

$("form").addEventListener("submit", async (submit) => {
  submit.preventDefault();
  const prompt = $("prompt").value.trim();
  if (!prompt || agent.isRunning) return;
  $("prompt").value = "";
  agent.addMessage({ id: crypto.randomUUID(), role: "user", content: prompt });
  render(agent.messages);
  $("status").textContent = "running";
  $("send").disabled = true;
  $("stop").disabled = false;
  try {
    await agent.runAgent();
  } catch (error) {
    $("status").textContent = `failed: ${error.message}`;
  } finally {
    $("send").disabled = false;
    $("stop").disabled = true;
  }
});

// Stop drops the connection; the server's disconnect policy decides what the run does.
$("stop").addEventListener("click", () => agent.abortRun());
