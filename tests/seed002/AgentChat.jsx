// Seed 002's React component: a chat box over POST /invoke's event stream.
//
// It reads a frame's first line as `event: <type>` and its second as `data: <json>`, that JSON
// being the event's own data: an `agent_step` with data.type === 'ai' shows data.content, and
// `agent_end` gives the answer, data.output. react_chat.html loads React 18 from the pinned
// npm packages (tests/js/seed) and this file through Babel's in-browser JSX transform.

const { useState } = React;

function AgentChat({ sessionId }) {
  const [input, setInput] = useState('');
  const [messages, setMessages] = useState([]);
  const [steps, setSteps] = useState([]);
  const [loading, setLoading] = useState(false);

  async function sendMessage(e) {
    e.preventDefault();
    const prompt = input;
    setInput('');
    setSteps([]);
    setLoading(true);
    setMessages((prev) => [...prev, { role: 'user', content: prompt }]);

    const response = await fetch('/invoke', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ prompt, session_id: sessionId, stream: true }),
    });
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';

    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      const frames = buffer.split('\n\n');
      buffer = frames.pop();

      for (const frame of frames) {
        if (!frame.startsWith('event:')) continue;
        const lines = frame.split('\n');
        const eventType = lines[0].replace('event: ', '');
        const data = JSON.parse(lines[1].replace('data: ', ''));

        if (eventType === 'agent_step' && data.type === 'ai' && data.content) {
          setSteps((prev) => [...prev, data.content]);
        } else if (eventType === 'agent_end') {
          setMessages((prev) => [...prev, { role: 'assistant', content: data.output }]);
        }
      }
    }
    setLoading(false);
  }

  return (
    <div className="agent-chat">
      <div className="messages">
        {messages.map((m, i) => (
          <div key={i} className={`message ${m.role}`} data-role={m.role}>
            {m.content}
          </div>
        ))}
      </div>
      {loading && (
        <ul className="steps">
          {steps.map((s, i) => (
            <li key={i} className="step">{s}</li>
          ))}
        </ul>
      )}
      <form onSubmit={sendMessage}>
        <input id="prompt" value={input} onChange={(e) => setInput(e.target.value)} />
        <button id="send" type="submit" disabled={loading}>Send</button>
      </form>
    </div>
  );
}

ReactDOM.createRoot(document.getElementById('root')).render(<AgentChat sessionId="seed-react" />);
