// A minimal useChat page for agentcast's POST /api/chat (see README: "Vercel AI SDK").
import { useChat } from "@ai-sdk/react";
import { DefaultChatTransport } from "ai";
import { useEffect, useState } from "react";
import { createRoot } from "react-dom/client";

// One chat per URL hash, kept across reloads: the id is agentcast's session id.
if (!location.hash) location.hash = `chat-${crypto.randomUUID().slice(0, 8)}`;
const chatId = location.hash.slice(1);
const saved = JSON.parse(localStorage.getItem(chatId) ?? "[]");

function Part({ part }) {
  if (part.type === "text") return <p>{part.text}</p>;
  if (part.type === "reasoning") {
    return (
      <details>
        <summary>reasoning</summary>
        {part.text}
      </details>
    );
  }
  if (part.type.startsWith("tool-")) {
    const result = part.state === "output-error" ? part.errorText : JSON.stringify(part.output);
    return (
      <div className="tool" data-testid="tool">
        {part.type.slice(5)}({JSON.stringify(part.input ?? {})}) {part.state}
        {part.state.startsWith("output") ? ` → ${result}` : ""}
      </div>
    );
  }
  // An LLM called inside a tool: one part, replaced in place as its tokens arrive.
  if (part.type === "data-agentcast-llm") {
    return (
      <div className="nested" data-testid="nested">
        inside the tool: {part.data.text}
      </div>
    );
  }
  return null;
}

function App() {
  const { messages, sendMessage, status, stop, error } = useChat({
    id: chatId,
    messages: saved,
    transport: new DefaultChatTransport({ api: "/api/chat" }),
    resume: true, // after a reload, GET /api/chat/{id}/stream picks up the run in progress
  });
  const [input, setInput] = useState("");

  // Keep the conversation for a reload, with only the answers that finished (the finish
  // chunk's metadata carries agentcast's outcome): an answer cut short by the reload itself
  // is resumed, and the resumed stream replays it whole, from its start.
  useEffect(() => {
    const finished = messages.filter((m) => m.role !== "assistant" || m.metadata?.outcome);
    localStorage.setItem(chatId, JSON.stringify(finished));
  }, [messages]);

  // stop() only drops the connection (the run keeps going for its grace period, ready to
  // be resumed); cancelling the run itself is agentcast's /runs/{id}/cancel, and the
  // assistant message's id is the run id.
  const cancel = () => {
    const last = messages[messages.length - 1];
    stop();
    if (last?.role === "assistant") fetch(`/runs/${last.id}/cancel`, { method: "POST" });
  };

  return (
    <main>
      <h1>agentcast + useChat</h1>
      {messages.map((m) => (
        <div className="message" key={m.id} data-testid={`message-${m.role}`}>
          <span className="role">{m.role}</span>
          {m.parts.map((part, i) => (
            <Part key={i} part={part} />
          ))}
        </div>
      ))}
      {error && <p className="error">{error.message}</p>}
      <form
        onSubmit={(e) => {
          e.preventDefault();
          if (!input.trim()) return;
          sendMessage({ text: input });
          setInput("");
        }}
      >
        <input
          aria-label="message"
          value={input}
          onChange={(e) => setInput(e.target.value)}
          placeholder="Ask something"
        />
        {status === "streaming" || status === "submitted" ? (
          <button type="button" onClick={cancel}>
            Stop
          </button>
        ) : (
          <button type="submit">Send</button>
        )}
      </form>
      <p data-testid="status">{status}</p>
    </main>
  );
}

createRoot(document.getElementById("root")).render(<App />);
