// Live co-editing for the editor: the pipeline's shared Yjs document over y-websocket
// (/ws/collab/pipelines/<id>), and presence (who is here, their cursor and selection) through Yjs
// awareness. The editor keeps drawing from its document; this hook writes each local change into
// the shared document and hands every change of the others back as a whole document.

import { useCallback, useEffect, useRef, useState } from "react";
import * as Y from "yjs";
import { WebsocketProvider } from "y-websocket";
import { serialise } from "../document.js";
import { isEmpty, lastSaved, markSaved, parts, readDocument, writeDocument } from "./ydoc.js";

const LOCAL = "iliad-local";
const DRAG_WRITE_MS = 80;
const CURSOR_MS = 50;
export const COLOURS = ["#d81b60", "#1e88e5", "#43a047", "#fb8c00", "#8e24aa", "#00897b", "#6d4c41", "#3949ab"];

/** A stable colour per user id. */
export function colourOf(userId) {
  const number = Number(userId) || String(userId).split("").reduce((sum, char) => sum + char.charCodeAt(0), 0);
  return COLOURS[Math.abs(number) % COLOURS.length];
}

function socketUrl(path) {
  const base = new URL(path, window.location.href);
  base.protocol = base.protocol === "https:" ? "wss:" : "ws:";
  return base.href;
}

/**
 * ``config``: the editor config (``collab.url``, ``collab.user``); ``pipelineId``: null until saved;
 * ``doc``/``docText``: the editor's document now; ``dragging``: a drag is in progress (writes are
 * throttled); ``selection``: the selected node ids; ``onRemote(document)``: the others changed the
 * shared document; ``onSaved(saved)``: someone saved a version from it ({number, by, at, text}).
 * Returns {status, peers, publishSaved, pointerMoved}.
 */
export function useCollab({ config, pipelineId, doc, docText, dragging, selection, onRemote, onSaved }) {
  const enabled = Boolean(config.collab && config.collab.url && pipelineId);
  const [status, setStatus] = useState(enabled ? "connecting" : "off");
  const [peers, setPeers] = useState([]);
  const session = useRef(null);
  const latest = useRef({ doc, docText, onRemote, onSaved });
  latest.current = { doc, docText, onRemote, onSaved };

  const flush = useCallback(() => {
    const current = session.current;
    if (!current || !current.synced) return;
    window.clearTimeout(current.writeTimer);
    current.writeTimer = null;
    if (latest.current.docText === current.lastText) return;
    writeDocument(current.ydoc, latest.current.doc, LOCAL);
    current.lastText = latest.current.docText;
  }, []);

  useEffect(() => {
    if (!enabled) return undefined;
    const ydoc = new Y.Doc();
    const provider = new WebsocketProvider(socketUrl(config.collab.url), String(pipelineId), ydoc, { disableBc: true });
    const current = { ydoc, provider, synced: false, lastText: null, writeTimer: null, readFrame: null, lastCursor: 0 };
    session.current = current;
    const user = config.collab.user || {};
    provider.awareness.setLocalStateField("user", { id: user.id, name: user.name || "someone", colour: colourOf(user.id) });

    const readRemote = () => {
      current.readFrame = null;
      flush(); // my pending change first, so the document read back has it
      const document = readDocument(ydoc, latest.current.doc);
      current.lastText = serialise(document);
      if (current.lastText !== latest.current.docText) latest.current.onRemote(document);
    };
    const onUpdate = (_update, origin) => {
      if (origin === LOCAL || !current.synced) return;
      if (current.readFrame === null) current.readFrame = window.requestAnimationFrame(readRemote);
    };
    ydoc.on("update", onUpdate);
    const onSync = (synced) => {
      if (!synced || current.synced) return;
      current.synced = true;
      if (isEmpty(ydoc)) {
        writeDocument(ydoc, latest.current.doc, LOCAL);
        current.lastText = latest.current.docText;
      } else {
        current.lastText = latest.current.docText; // the page's version is not a change to write back
        readRemote();
      }
    };
    provider.on("sync", onSync);
    provider.on("status", (event) => setStatus(event.status === "connected" ? "live" : event.status === "connecting" ? "connecting" : "offline"));
    provider.on("connection-close", () => setStatus("offline"));
    const meta = parts(ydoc).meta;
    const onMeta = (event, transaction) => {
      if (transaction.origin === LOCAL || !event.keysChanged.has("saved")) return;
      const saved = lastSaved(ydoc);
      if (saved) latest.current.onSaved(saved);
    };
    meta.observe(onMeta);
    const onAwareness = () => {
      const others = [];
      provider.awareness.getStates().forEach((state, clientId) => {
        if (clientId !== ydoc.clientID && state && state.user) others.push({ clientId, ...state });
      });
      others.sort((a, b) => a.clientId - b.clientId);
      setPeers(others);
    };
    provider.awareness.on("change", onAwareness);
    window.iliadCollab = { ydoc, provider, status: () => (provider.wsconnected ? "live" : "offline"), synced: () => current.synced };
    return () => {
      window.clearTimeout(current.writeTimer);
      if (current.readFrame !== null) window.cancelAnimationFrame(current.readFrame);
      flush();
      meta.unobserve(onMeta);
      provider.awareness.off("change", onAwareness);
      provider.destroy();
      ydoc.destroy();
      session.current = null;
      setPeers([]);
    };
  }, [enabled, pipelineId, config.collab, flush]);

  // Each local change goes into the shared document: at once, or every DRAG_WRITE_MS while dragging.
  useEffect(() => {
    const current = session.current;
    if (!current || !current.synced || docText === current.lastText) return;
    if (!dragging) {
      flush();
    } else if (current.writeTimer === null) {
      current.writeTimer = window.setTimeout(flush, DRAG_WRITE_MS);
    }
  }, [docText, dragging, flush]);

  const selectionKey = (selection || []).join("\n");
  useEffect(() => {
    const current = session.current;
    if (current) current.provider.awareness.setLocalStateField("selection", selectionKey ? selectionKey.split("\n") : []);
  }, [selectionKey, status]);

  /** Tell the others a version was saved from the shared document (they take it as their base). */
  const publishSaved = useCallback((saved) => {
    const current = session.current;
    if (current && current.synced) current.ydoc.transact(() => markSaved(current.ydoc, saved), LOCAL);
  }, []);

  /** The pointer moved to ``position`` (flow coordinates) or left the canvas (null). */
  const pointerMoved = useCallback((position) => {
    const current = session.current;
    if (!current) return;
    const now = Date.now();
    if (position && now - current.lastCursor < CURSOR_MS) return;
    current.lastCursor = now;
    current.provider.awareness.setLocalStateField("cursor", position ? { x: Math.round(position.x), y: Math.round(position.y) } : null);
  }, []);

  return { status: enabled ? status : "off", peers, publishSaved, pointerMoved };
}
