// Serves this folder (the page and node_modules) on 127.0.0.1, standard library only.
// One thing a plain file server lacks: rxjs's ES module build imports its own files without
// the `.js` extension, so a path that is not found is tried again with `.js` appended.
//
//   PORT=5173 node serve.mjs     (PORT=0 picks a free port; the URL is printed)
import { createServer } from "node:http";
import { readFile, stat } from "node:fs/promises";
import { extname, join, normalize, sep } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL(".", import.meta.url));
const types = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".json": "application/json",
  ".map": "application/json",
};

async function resolve(path) {
  for (const candidate of [path, `${path}.js`, join(path, "index.html")]) {
    try {
      if ((await stat(candidate)).isFile()) return candidate;
    } catch {
      // try the next one
    }
  }
  return null;
}

const server = createServer(async (request, response) => {
  const url = new URL(request.url, "http://localhost");
  const path = normalize(join(root, decodeURIComponent(url.pathname)));
  const file = path.startsWith(root) || `${path}${sep}` === root ? await resolve(path) : null;
  if (request.method !== "GET" || file === null) {
    response.writeHead(404, { "Content-Type": "text/plain" }).end("not found\n");
    return;
  }
  const type = types[extname(file)] ?? "application/octet-stream";
  response.writeHead(200, { "Content-Type": type, "Cache-Control": "no-cache" });
  response.end(await readFile(file));
});

server.listen(Number(process.env.PORT ?? 5173), "127.0.0.1", () => {
  console.log(`http://127.0.0.1:${server.address().port}/`);
});
