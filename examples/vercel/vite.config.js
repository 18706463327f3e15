// The page is served by Vite; /api/chat and /runs go to agentcast (`agentcast serve`).
import { defineConfig } from "vite";

const agentcast = process.env.AGENTCAST_URL ?? "http://127.0.0.1:8000";

export default defineConfig({
  server: {
    proxy: { "/api": agentcast, "/runs": agentcast },
  },
});
