import { createRoot } from "react-dom/client";
import "@xyflow/react/dist/style.css";
import "./editor.css";
import App from "./App.jsx";

function readJson(id, fallback) {
  const element = document.getElementById(id);
  if (!element) return fallback;
  try {
    return JSON.parse(element.textContent);
  } catch {
    return fallback;
  }
}

const root = document.getElementById("editor-root");
if (root) {
  performance.mark("iliad-editor-start");
  const config = readJson("editor-config", {});
  const catalog = readJson("editor-catalog", {});
  const initialDocument = readJson("editor-document", null);
  createRoot(root).render(<App config={config} specs={catalog} initialDocument={initialDocument} />);
}
