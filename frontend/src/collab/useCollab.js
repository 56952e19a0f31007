// Live co-editing for the editor: the pipeline's shared Yjs document over y-websocket
// (/ws/collab/pipelines/<id>), and presence (who is here, their cursor and selection) through Yjs
// awareness. The editor keeps drawing from its document; this hook writes each local change into
// the shared document and hands every change of the others back as a whole document.
//
// Undo and redo, while the shared document is in use, go through a Yjs UndoManager that tracks
// only this editor's own writes (origin LOCAL): undo takes back my last change, never someone
// else's, and keeps every change the others made since. A read-only editor (a viewer) never writes.

import { useCallback, useEffect, useRef, useState } from "react";
import * as Y from "yjs";
import { WebsocketProvider } from "y-websocket";
import { serialise } from "../document.js";
import { isEmpty, lastSaved, markSaved, parts, readDocument, writeDocument } from "./ydoc.js";
import { localChangeOnto } from "./operations.js";

const LOCAL = "iliad-local";
const SAVED = "iliad-saved"; // "a version was saved" markers: not an editing step to undo
const UNDO_CAPTURE_MS = 400; // my changes closer together than this are one undo step
const DRAG_WRITE_MS = 80;
const CURSOR_MS = 50;
// White text on each has a contrast of at least 5:1 (WCAG AA for the small name labels).
export const COLOURS = ["#ad1457", "#1565c0", "#2e7d32", "#bf360c", "#6a1b9a", "#00695c", "#5d4037", "#283593"];

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
export function useCollab({ config, pipelineId, doc, docText, dragging, selection, onRemote, onSaved, readOnly = false }) {
  const enabled = Boolean(config.collab && config.collab.url && pipelineId);
  const [status, setStatus] = useState(enabled ? "connecting" : "off");
  const [peers, setPeers] = useState([]);
  const [undoState, setUndoState] = useState({ active: false, undo: 0, redo: 0 });
  const session = useRef(null);
  const latest = useRef({ doc, docText, onRemote, onSaved });
  latest.current = { doc, docText, onRemote, onSaved };

  const flush = useCallback(() => {
    const current = session.current;
    if (!current || !current.synced) return;
    window.clearTimeout(current.writeTimer);
    current.writeTimer = null;
    if (latest.current.docText === current.lastText || current.readOnly) return;
    // Only my change since the document I last had in common with the others goes in: what they
    // changed meanwhile (arrived, not drawn yet) stays theirs.
    const mine = latest.current.doc;
    const theirs = current.base ? readDocument(current.ydoc, mine) : null;
    writeDocument(current.ydoc, localChangeOnto(current.base, mine, theirs), LOCAL);
    current.lastText = latest.current.docText;
    current.base = mine;
  }, []);

  useEffect(() => {
    if (!enabled) return undefined;
    const ydoc = new Y.Doc();
    const provider = new WebsocketProvider(socketUrl(config.collab.url), String(pipelineId), ydoc, { disableBc: true });
    const current = { ydoc, provider, synced: false, lastText: null, writeTimer: null, readFrame: null, lastCursor: 0, readOnly };
    session.current = current;
    const { nodes, order, edges, meta } = parts(ydoc);
    const undoManager = new Y.UndoManager([nodes, order, edges, meta], {
      trackedOrigins: new Set([LOCAL]),
      captureTimeout: UNDO_CAPTURE_MS,
    });
    current.undoManager = undoManager;
    const onStack = () =>
      setUndoState({ active: current.synced && !readOnly, undo: undoManager.undoStack.length, redo: undoManager.redoStack.length });
    undoManager.on("stack-item-added", onStack);
    undoManager.on("stack-item-popped", onStack);
    undoManager.on("stack-cleared", onStack);
    const user = config.collab.user || {};
    provider.awareness.setLocalStateField("user", { id: user.id, name: user.name || "someone", colour: colourOf(user.id), viewing: readOnly });

    const readRemote = () => {
      current.readFrame = null;
      flush(); // my pending change first, so the document read back has it
      const document = readDocument(ydoc, latest.current.doc);
      current.lastText = serialise(document);
      current.base = document;
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
      if (isEmpty(ydoc) && !readOnly) {
        writeDocument(ydoc, latest.current.doc, LOCAL);
        current.lastText = latest.current.docText;
        current.base = latest.current.doc;
      } else {
        current.lastText = latest.current.docText; // the page's version is not a change to write back
        readRemote();
      }
      undoManager.clear(); // what was there when I came is not mine to undo
      onStack();
    };
    provider.on("sync", onSync);
    provider.on("status", (event) => setStatus(event.status === "connected" ? "live" : event.status === "connecting" ? "connecting" : "offline"));
    provider.on("connection-close", () => setStatus("offline"));
    const onMeta = (event, transaction) => {
      if (transaction.origin === SAVED || !event.keysChanged.has("saved")) return;
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
      undoManager.destroy();
      window.clearTimeout(current.writeTimer);
      if (current.readFrame !== null) window.cancelAnimationFrame(current.readFrame);
      flush();
      meta.unobserve(onMeta);
      provider.awareness.off("change", onAwareness);
      provider.destroy();
      ydoc.destroy();
      session.current = null;
      setPeers([]);
      setUndoState({ active: false, undo: 0, redo: 0 });
    };
  }, [enabled, pipelineId, config.collab, flush, readOnly]);

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
    if (current && current.synced && !current.readOnly) current.ydoc.transact(() => markSaved(current.ydoc, saved), SAVED);
  }, []);

  /** Take back my last change (or redo it) in the shared document; false when there is none. */
  const step = useCallback(
    (direction) => {
      const current = session.current;
      if (!current || !current.synced || current.readOnly) return false;
      flush(); // a change still waiting (a drag) is part of what is undone
      const manager = current.undoManager;
      if (!(direction === "undo" ? manager.undoStack.length : manager.redoStack.length)) return false;
      manager.stopCapturing();
      if (direction === "undo") manager.undo();
      else manager.redo();
      return true;
    },
    [flush],
  );
  const undo = useCallback(() => step("undo"), [step]);
  const redo = useCallback(() => step("redo"), [step]);

  /** The pointer moved to ``position`` (flow coordinates) or left the canvas (null). */
  const pointerMoved = useCallback((position) => {
    const current = session.current;
    if (!current) return;
    const now = Date.now();
    if (position && now - current.lastCursor < CURSOR_MS) return;
    current.lastCursor = now;
    current.provider.awareness.setLocalStateField("cursor", position ? { x: Math.round(position.x), y: Math.round(position.y) } : null);
  }, []);

  return {
    status: enabled ? status : "off",
    peers,
    publishSaved,
    pointerMoved,
    // While the shared document is in use, undo/redo are these (my own changes only).
    shared: enabled && undoState.active,
    canUndo: undoState.undo > 0,
    canRedo: undoState.redo > 0,
    undo,
    redo,
  };
}
