import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import {
  Background,
  Controls,
  MiniMap,
  ReactFlow,
  ReactFlowProvider,
  applyEdgeChanges,
  applyNodeChanges,
  useNodesInitialized,
  useReactFlow,
  useStore,
} from "@xyflow/react";
import BlockNode from "./components/BlockNode.jsx";
import Palette, { DRAG_TYPE } from "./components/Palette.jsx";
import SidePanel from "./components/SidePanel.jsx";
import DataBrowser from "./components/DataBrowser.jsx";
import { RunDialog, TemplateDialog } from "./components/Dialogs.jsx";
import { EditorContext, IssuesContext } from "./context.js";
import {
  ImportError,
  NODE_ID_RE,
  defaultParams,
  documentToGraph,
  edgeKey,
  emptyDocument,
  freshNodeId,
  graphToDocument,
  inHandle,
  makeCatalog,
  outHandle,
  portOfHandle,
  serialise,
} from "./document.js";
import { connectionProblem } from "./connect.js";
import { FixError, fixLabel, fixOf, insertOnEdge } from "./fixes.js";
import { canRedo, canUndo, initHistory, record, redo, reset, undo } from "./history.js";
import { layeredLayout } from "./layout.js";
import { api, errorText } from "./api.js";
import { useCollab } from "./collab/useCollab.js";
import { alignTo } from "./collab/ydoc.js";
import { mergeDocuments } from "./collab/operations.js";
import { PresenceBar, PresenceLayer } from "./components/Presence.jsx";
import ConflictDialog from "./components/Conflict.jsx";
import FileMenu from "./components/FileMenu.jsx";
import { CommentBadges, CommentsPanel, threadsOf, useComments } from "./components/Comments.jsx";

const nodeTypes = { block: BlockNode };
const NODE_W = 230;
const NODE_H = 130;
const VALIDATE_DELAY_MS = 400;
// Props handed to React Flow are module constants: a new object on every render would make React
// Flow update its store each time (noticeable with hundreds of nodes).
const DELETE_KEYS = ["Delete", "Backspace"];
const MULTI_SELECT_KEYS = ["Shift", "Meta", "Control"];
// Never fit below 70 %: a projected pipeline must stay readable; a larger one is panned instead.
const FIT_VIEW_OPTIONS = { padding: 0.15, maxZoom: 1.2, minZoom: 0.7 };
const FIT_ANIMATED = { ...FIT_VIEW_OPTIONS, duration: 200 };
const FOLDS_KEY = "iliad.editor.folds";
const DEFAULT_EDGE_OPTIONS = { type: "smoothstep" };
const PRO_OPTIONS = { hideAttribution: false };

function edgeFor(source, sourcePort, target, targetPort) {
  return {
    id: `e:${edgeKey(source, sourcePort, target, targetPort)}`,
    source,
    target,
    sourceHandle: outHandle(sourcePort),
    targetHandle: inHandle(targetPort),
  };
}

const zoomedInSelector = (state) => state.transform[2] >= 0.45;

/** The dotted grid, only when zoomed in enough to see it: far out it would be tens of thousands
 * of sub-pixel dots to paint on every frame of a pan. */
function Grid() {
  const zoomedIn = useStore(zoomedInSelector);
  return zoomedIn ? <Background gap={20} /> : null;
}

function isTyping(target) {
  if (!target || !target.closest) return false;
  return Boolean(target.closest("input, textarea, select, [contenteditable=true], .params-form, dialog"));
}

function slugify(text) {
  return (text || "pipeline").toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "") || "pipeline";
}

// A read-only editor (a viewer's) lets the canvas be looked at: select, pan, zoom, no changes.
const READ_ONLY_CHANGES = new Set(["select", "dimensions"]);

function Editor({ config, specs, initialDocument }) {
  const readOnly = Boolean(config.readOnly && config.pipeline);
  const catalog = useMemo(() => makeCatalog(specs), [specs]);
  const flow = useReactFlow();
  const nodesInitialized = useNodesInitialized();
  const canvasRef = useRef(null);

  const initial = useMemo(() => {
    const graph = documentToGraph(initialDocument || emptyDocument(), catalog);
    return { ...graph, text: serialise(graphToDocument(graph.nodes, graph.edges, graph.metadata)) };
  }, []); // eslint-disable-line react-hooks/exhaustive-deps

  const [pipeline, setPipeline] = useState(config.pipeline || null);
  const [name, setName] = useState((config.pipeline && config.pipeline.name) || "");
  const [description, setDescription] = useState((config.pipeline && config.pipeline.description) || "");
  const [saved, setSaved] = useState({
    text: config.pipeline ? initial.text : serialise(emptyDocument()),
    name: (config.pipeline && config.pipeline.name) || "",
    description: (config.pipeline && config.pipeline.description) || "",
  });
  const [nodes, setNodes] = useState(initial.nodes);
  const [edges, setEdges] = useState(initial.edges);
  const [metadata, setMetadata] = useState(initial.metadata);
  const [history, setHistory] = useState(() => initHistory(initial.text));
  const [dragging, setDragging] = useState(false);
  const [issues, setIssues] = useState([]);
  const [checking, setChecking] = useState(false);
  const [status, setStatus] = useState({ text: "", kind: "info" });
  const [hint, setHint] = useState("");
  const [pending, setPending] = useState(null);
  const [versions, setVersions] = useState([]);
  const [draft, setDraft] = useState(null);
  const [runOpen, setRunOpen] = useState(false);
  const [templatesOpen, setTemplatesOpen] = useState(false);
  const [ready, setReady] = useState(false);
  const [flowReady, setFlowReady] = useState(false);
  const mergeKey = useRef(null);
  const collabRef = useRef({ shared: false });
  const nodesRef = useRef(nodes);
  const edgesRef = useRef(edges);
  nodesRef.current = nodes;
  edgesRef.current = edges;
  const pasteCount = useRef(0);
  const clipboard = useRef(null);
  const validateSeq = useRef(0);

  const doc = useMemo(() => graphToDocument(nodes, edges, metadata), [nodes, edges, metadata]);
  const docText = useMemo(() => serialise(doc), [doc]);
  const dirty = !readOnly && (docText !== saved.text || name !== saved.name || description !== saved.description);
  const draftKey = `iliad.editor.draft.${pipeline ? pipeline.id : "new"}`;

  // Read-only hook for tests, the benchmark and the browser console.
  const docRef = useRef(doc);
  docRef.current = doc;
  useEffect(() => {
    window.iliadEditor = {
      document: () => JSON.parse(JSON.stringify(docRef.current)),
      dirty: () => docRef.dirty,
      getViewport: () => flow.getViewport(),
      setViewport: (viewport) => flow.setViewport(viewport),
    };
  }, [flow]);
  docRef.dirty = dirty;

  const say = useCallback((text, kind = "info") => setStatus({ text, kind, at: Date.now() }), []);
  // A message fades from the canvas after a while (errors stay longer); it stays in the live region.
  const [statusFaded, setStatusFaded] = useState(false);
  useEffect(() => {
    setStatusFaded(false);
    if (!status.text) return undefined;
    const timer = window.setTimeout(() => setStatusFaded(true), status.kind === "error" ? 20000 : 8000);
    return () => window.clearTimeout(timer);
  }, [status]);

  // --- history ------------------------------------------------------------------------------
  useEffect(() => {
    if (dragging) return;
    setHistory((current) => record(current, docText, mergeKey.current));
    mergeKey.current = null;
  }, [docText, dragging]);

  const loadText = useCallback(
    (text, { keepSelection = true } = {}) => {
      const graph = documentToGraph(JSON.parse(text), catalog);
      const previous = new Map(nodesRef.current.map((node) => [node.id, node]));
      setNodes(
        graph.nodes.map((node) => {
          const old = previous.get(node.id);
          return old ? { ...node, selected: keepSelection && old.selected, measured: old.measured } : node;
        }),
      );
      setEdges(graph.edges);
      setMetadata(graph.metadata);
    },
    [catalog],
  );

  const doUndo = useCallback(() => {
    if (readOnly) return undefined;
    if (collabRef.current.shared) return say(collabRef.current.undo() ? "Undone (your last change)." : "Nothing of yours to undo.");
    if (!canUndo(history)) return say("Nothing to undo.");
    const next = undo(history);
    setHistory(next);
    loadText(next.present);
    say("Undone.");
  }, [history, loadText, say, readOnly]);

  const doRedo = useCallback(() => {
    if (readOnly) return undefined;
    if (collabRef.current.shared) return say(collabRef.current.redo() ? "Redone." : "Nothing to redo.");
    if (!canRedo(history)) return say("Nothing to redo.");
    const next = redo(history);
    setHistory(next);
    loadText(next.present);
    say("Redone.");
  }, [history, loadText, say, readOnly]);

  /** Replace the whole document (import, restore, template): one undoable change. */
  const replaceDocument = useCallback(
    (document, { baseline = false } = {}) => {
      const graph = documentToGraph(document, catalog);
      setNodes(graph.nodes);
      setEdges(graph.edges);
      setMetadata(graph.metadata);
      if (baseline) setHistory(reset(serialise(graphToDocument(graph.nodes, graph.edges, graph.metadata))));
      window.requestAnimationFrame(() => flow.fitView(FIT_VIEW_OPTIONS));
      return graph;
    },
    [catalog, flow],
  );

  // --- editing together: the shared document, presence, refused saves ------------------------
  const selectedIds = useMemo(() => nodes.filter((node) => node.selected).map((node) => node.id), [nodes]);
  const onRemote = useCallback((document) => loadText(serialise(document)), [loadText]);
  const onSaved = useCallback(
    (info) => {
      setPipeline((current) => (current && info.number > current.version ? { ...current, version: info.number } : current));
      if (info.text) setSaved((current) => ({ ...current, text: serialise(alignTo(JSON.parse(info.text), docRef.current)) }));
      say(`${info.by || "Someone"} saved version ${info.number}.`);
    },
    [say],
  );
  const collab = useCollab({ config, pipelineId: pipeline ? pipeline.id : null, doc, docText, dragging, selection: selectedIds, onRemote, onSaved, readOnly });
  collabRef.current = collab;
  const undoable = collab.shared ? collab.canUndo : canUndo(history);
  const redoable = collab.shared ? collab.canRedo : canRedo(history);
  const [conflict, setConflict] = useState(null);
  const [choices, setChoices] = useState({}); // node → parameter → names the data offer
  const [extents, setExtents] = useState({}); // node → the area and days of the data it works on
  const [merging, setMerging] = useState(false);
  const forcedBase = useRef(null);
  const comments = useComments(config, pipeline ? pipeline.id : null);
  const [commentsFor, setCommentsFor] = useState(undefined); // undefined: closed; null: all; "": the pipeline; else a node
  const openThreads = useMemo(() => threadsOf(comments.comments).filter((thread) => !thread.resolved).length, [comments.comments]);

  // --- server validation (debounced), same codes as the API ---------------------------------
  useEffect(() => {
    const seq = ++validateSeq.current;
    setChecking(true);
    const timer = window.setTimeout(() => {
      api("POST", config.urls.validate, { document: JSON.parse(docText) })
        .then((result) => {
          if (seq !== validateSeq.current) return;
          setIssues(result.errors || []);
          // Same names as before: keep the object, so the open form is not rebuilt on every check.
          const next = result.choices || {};
          setChoices((current) => (JSON.stringify(current) === JSON.stringify(next) ? current : next));
          const found = result.extents || {};
          setExtents((current) => (JSON.stringify(current) === JSON.stringify(found) ? current : found));
        })
        .catch((error) => {
          if (seq === validateSeq.current) say(`Could not check the pipeline: ${errorText(error)}`, "error");
        })
        .finally(() => {
          if (seq === validateSeq.current) setChecking(false);
        });
    }, VALIDATE_DELAY_MS);
    return () => window.clearTimeout(timer);
  }, [docText, config.urls.validate, say]);

  const issueIndex = useMemo(() => {
    const byNode = new Map();
    const byPort = new Map();
    const ownerOf = new Map();
    nodes.forEach((node) => {
      const docId = node.data.docId !== undefined ? node.data.docId : node.id;
      if (!ownerOf.has(docId)) ownerOf.set(docId, node);
    });
    const list = issues.map((issue) => {
      let node = null;
      const match = /^\/nodes\/(\d+)(\/|$)/.exec(issue.pointer || "");
      if (match && nodes[Number(match[1])]) node = nodes[Number(match[1])];
      else if (issue.node && ownerOf.has(issue.node)) node = ownerOf.get(issue.node);
      if (node) {
        if (!byNode.has(node.id)) byNode.set(node.id, []);
        byNode.get(node.id).push(issue);
        if (issue.port) {
          const spec = catalog.get(node.data.block, node.data.version);
          const direction =
            (issue.details && issue.details.direction === "output") ||
            (spec && !spec.inputs.some((port) => port.name === issue.port) && spec.outputs.some((port) => port.name === issue.port))
              ? "out"
              : "in";
          const key = `${node.id}|${direction}|${issue.port}`;
          if (!byPort.has(key)) byPort.set(key, []);
          byPort.get(key).push(issue);
        }
      }
      return { ...issue, nodeRef: node ? node.id : null };
    });
    return { byNode, byPort, list };
  }, [issues, nodes, catalog]);

  /** Apply the fix a validation issue offers (e.g. insert a unit conversion on its edge): one undoable change. */
  const applyFix = useCallback(
    (issue) => {
      const fix = fixOf(issue);
      if (!fix) return;
      try {
        const result = insertOnEdge(nodesRef.current, edgesRef.current, issue, catalog);
        setNodes(result.nodes);
        setEdges(result.edges);
        say(`${fixLabel(fix)}: added ${result.id} before ${issue.node}.${issue.port}.`);
      } catch (error) {
        if (!(error instanceof FixError)) throw error;
        say(error.message, "error");
      }
    },
    [catalog, say],
  );
  const issuesContext = useMemo(() => ({ ...issueIndex, applyFix }), [issueIndex, applyFix]);

  // --- graph edits -------------------------------------------------------------------------
  const onNodesChange = useCallback(
    (changes) => {
      const allowed = readOnly ? changes.filter((change) => READ_ONLY_CHANGES.has(change.type)) : changes;
      if (allowed.length) setNodes((current) => applyNodeChanges(allowed, current));
    },
    [readOnly],
  );
  const onEdgesChange = useCallback(
    (changes) => {
      const allowed = readOnly ? changes.filter((change) => change.type === "select") : changes;
      if (allowed.length) setEdges((current) => applyEdgeChanges(allowed, current));
    },
    [readOnly],
  );

  const freeSpot = useCallback(
    (preferred) => {
      let { x, y } = preferred;
      const overlaps = (px, py) =>
        nodesRef.current.some((node) => {
          const w = (node.measured && node.measured.width) || NODE_W;
          const h = (node.measured && node.measured.height) || NODE_H;
          return px < node.position.x + w + 20 && px + NODE_W + 20 > node.position.x && py < node.position.y + h + 20 && py + NODE_H + 20 > node.position.y;
        });
      for (let i = 0; i < 400 && overlaps(x, y); i += 1) {
        y += 60;
        if (i % 8 === 7) {
          x += NODE_W + 40;
          y = preferred.y;
        }
      }
      return { x: Math.round(x), y: Math.round(y) };
    },
    [],
  );

  const addBlock = useCallback(
    (blockId, version, position, { focus = false, params = null } = {}) => {
      const spec = (version && catalog.get(blockId, version)) || catalog.latest(blockId);
      if (!spec) return;
      const taken = new Set(nodesRef.current.map((node) => (node.data.docId !== undefined ? node.data.docId : node.id)));
      const id = freshNodeId(spec.id, taken);
      let where = position;
      if (!where) {
        const bounds = canvasRef.current ? canvasRef.current.getBoundingClientRect() : null;
        const centre = bounds
          ? flow.screenToFlowPosition({ x: bounds.left + bounds.width / 3, y: bounds.top + bounds.height / 3 })
          : { x: 40, y: 40 };
        where = freeSpot(centre);
      }
      const node = {
        id,
        type: "block",
        position: { x: Math.round(where.x), y: Math.round(where.y) },
        data: { block: spec.id, version: spec.version, params: { ...defaultParams(spec), ...(params || {}) } },
        ariaLabel: `${spec.title} (${id})`,
        selected: true,
      };
      setNodes((current) => [...current.map((other) => (other.selected ? { ...other, selected: false } : other)), node]);
      setEdges((current) => current.map((edge) => (edge.selected ? { ...edge, selected: false } : edge)));
      say(`Added ${spec.title} as ${id}.`);
      if (focus) {
        window.setTimeout(() => {
          const element = document.querySelector(`.react-flow__node[data-id="${CSS.escape(id)}"]`);
          if (element) element.focus();
        }, 50);
      }
    },
    [catalog, flow, freeSpot, say],
  );

  const connect = useCallback(
    (connection) => {
      const problem = connectionProblem(connection, nodesRef.current, edgesRef.current, catalog);
      if (problem) {
        say(`Connection refused. ${problem}`, "error");
        return false;
      }
      const edge = edgeFor(connection.source, portOfHandle(connection.sourceHandle), connection.target, portOfHandle(connection.targetHandle));
      setEdges((current) => [...current, edge]);
      say(`Connected ${connection.source}.${portOfHandle(connection.sourceHandle)} → ${connection.target}.${portOfHandle(connection.targetHandle)}.`);
      return true;
    },
    [catalog, say],
  );

  const isValidConnection = useCallback(
    (connection) => {
      const problem = connectionProblem(connection, nodesRef.current, edgesRef.current, catalog);
      setHint(problem ? `Cannot connect: ${problem}` : "");
      return !problem;
    },
    [catalog],
  );

  const onConnectEnd = useCallback(
    (event, state) => {
      setHint("");
      if (!state || !state.toHandle || state.isValid) return;
      const from = state.fromHandle;
      const to = state.toHandle;
      const connection =
        from.type === "source"
          ? { source: from.nodeId, sourceHandle: from.id, target: to.nodeId, targetHandle: to.id }
          : { source: to.nodeId, sourceHandle: to.id, target: from.nodeId, targetHandle: from.id };
      const problem = connectionProblem(connection, nodesRef.current, edgesRef.current, catalog) || "Those two ports cannot be connected.";
      say(`Connection refused. ${problem}`, "error");
    },
    [catalog, say],
  );

  const onPortActivate = useCallback(
    (nodeId, direction, port) => {
      if (readOnly) return;
      setPending((current) => {
        if (!current || current.direction === direction || current.nodeId === nodeId) {
          if (current && current.nodeId === nodeId && current.direction === direction && current.port === port) {
            say("Connection cancelled.");
            return null;
          }
          say(`Chosen ${direction === "out" ? "output" : "input"} ${port} of ${nodeId}. Now choose ${direction === "out" ? "an input" : "an output"} port of another block and press Enter (Escape cancels).`);
          return { nodeId, direction, port };
        }
        const connection =
          current.direction === "out"
            ? { source: current.nodeId, sourceHandle: outHandle(current.port), target: nodeId, targetHandle: inHandle(port) }
            : { source: nodeId, sourceHandle: outHandle(port), target: current.nodeId, targetHandle: inHandle(current.port) };
        window.setTimeout(() => connect(connection), 0);
        return null;
      });
    },
    [connect, say, readOnly],
  );

  // Deleting with the keyboard (Delete/Backspace) goes through React Flow: say what went.
  const announceDeleted = useCallback(
    ({ nodes: goneNodes, edges: goneEdges }) => {
      const names = goneNodes.map((node) => node.data?.label || node.id);
      if (names.length) say(`Deleted ${names.join(", ")}${goneEdges.length ? ` and ${goneEdges.length} connection(s)` : ""}.`);
      else if (goneEdges.length) say(`Deleted ${goneEdges.length} connection(s).`);
    },
    [say],
  );

  const deleteNodes = useCallback(
    (ids) => {
      const gone = new Set(ids);
      setNodes((current) => current.filter((node) => !gone.has(node.id)));
      setEdges((current) => current.filter((edge) => !gone.has(edge.source) && !gone.has(edge.target)));
      say(`Deleted ${ids.length} node(s).`);
    },
    [say],
  );

  const updateData = useCallback((id, patch, key) => {
    mergeKey.current = key || null;
    setNodes((current) => current.map((node) => (node.id === id ? { ...node, data: { ...node.data, ...patch } } : node)));
  }, []);

  const onParams = useCallback(
    (id, params) => {
      const node = nodesRef.current.find((candidate) => candidate.id === id);
      if (node && JSON.stringify(node.data.params) === JSON.stringify(params)) return;
      updateData(id, { params }, `params:${id}`);
    },
    [updateData],
  );

  const onLabel = useCallback(
    (id, label) => {
      const patch = { label: label === "" ? undefined : label };
      mergeKey.current = `label:${id}`;
      setNodes((current) =>
        current.map((node) => {
          if (node.id !== id) return node;
          const data = { ...node.data, ...patch };
          if (data.label === undefined) delete data.label;
          return { ...node, data };
        }),
      );
    },
    [],
  );

  const onVersion = useCallback((id, version) => updateData(id, { version }), [updateData]);
  // A node's compute target; "" goes back to the run's target (the key leaves the document).
  const onTarget = useCallback(
    (id, target) => updateData(id, { target: target === "" ? undefined : target }, `target:${id}`),
    [updateData],
  );

  const onRename = useCallback(
    (id, newId) => {
      if (!NODE_ID_RE.test(newId)) return "Use 1 to 64 letters, digits, _ or -, starting with a letter.";
      if (nodesRef.current.some((node) => node.id === newId || node.data.docId === newId)) return `The id ${newId} is already used.`;
      setNodes((current) =>
        current.map((node) => {
          if (node.id !== id) return node;
          const data = { ...node.data };
          delete data.docId;
          return { ...node, id: newId, data };
        }),
      );
      setEdges((current) =>
        current.map((edge) => {
          if (edge.source !== id && edge.target !== id) return edge;
          const source = edge.source === id ? newId : edge.source;
          const target = edge.target === id ? newId : edge.target;
          return { ...edgeFor(source, portOfHandle(edge.sourceHandle), target, portOfHandle(edge.targetHandle)), selected: edge.selected };
        }),
      );
      say(`Renamed ${id} to ${newId}.`);
      return null;
    },
    [say],
  );

  const copySelection = useCallback(() => {
    const chosen = nodesRef.current.filter((node) => node.selected);
    if (!chosen.length) return say("Select nodes to copy first.");
    const ids = new Set(chosen.map((node) => node.id));
    const inner = edgesRef.current.filter((edge) => ids.has(edge.source) && ids.has(edge.target));
    clipboard.current = graphToDocument(chosen, inner);
    pasteCount.current = 0;
    try {
      window.localStorage.setItem("iliad.editor.clipboard", JSON.stringify(clipboard.current));
    } catch {
      /* storage may be full or disabled */
    }
    say(`Copied ${chosen.length} node(s).`);
  }, [say]);

  const paste = useCallback(() => {
    let source = clipboard.current;
    if (!source) {
      try {
        source = JSON.parse(window.localStorage.getItem("iliad.editor.clipboard") || "null");
      } catch {
        source = null;
      }
    }
    if (!source || !source.nodes || !source.nodes.length) return say("Nothing to paste.");
    pasteCount.current += 1;
    const offset = 40 * pasteCount.current;
    const taken = new Set(nodesRef.current.map((node) => (node.data.docId !== undefined ? node.data.docId : node.id)));
    const rename = {};
    const added = source.nodes.map((raw) => {
      const id = freshNodeId(raw.id, taken);
      taken.add(id);
      rename[raw.id] = id;
      const data = { block: raw.block, version: raw.version, params: JSON.parse(JSON.stringify(raw.params || {})) };
      if (raw.label !== undefined) data.label = raw.label;
      const spec = catalog.get(raw.block, raw.version);
      return {
        id,
        type: "block",
        position: { x: (raw.position ? raw.position.x : 0) + offset, y: (raw.position ? raw.position.y : 0) + offset },
        data,
        ariaLabel: `${raw.label || (spec ? spec.title : raw.block)} (${id})`,
        selected: true,
      };
    });
    const addedEdges = source.edges.map((edge) => edgeFor(rename[edge.source], edge.source_port, rename[edge.target], edge.target_port));
    setNodes((current) => [...current.map((node) => (node.selected ? { ...node, selected: false } : node)), ...added]);
    setEdges((current) => [...current, ...addedEdges]);
    say(`Pasted ${added.length} node(s).`);
  }, [catalog, say]);

  const selectAll = useCallback(() => {
    setNodes((current) => current.map((node) => ({ ...node, selected: true })));
  }, []);

  const autoLayout = useCallback(async () => {
    say("Arranging…");
    try {
      const positions = await layeredLayout(nodesRef.current, edgesRef.current);
      setNodes((current) => current.map((node) => (positions[node.id] ? { ...node, position: positions[node.id] } : node)));
      window.requestAnimationFrame(() => flow.fitView(FIT_ANIMATED));
      say("Arranged from left to right.");
    } catch (error) {
      say(`Auto-layout failed: ${error.message}`, "error");
    }
  }, [flow, say]);

  const fit = useCallback(() => flow.fitView(FIT_ANIMATED), [flow]);

  const focusNode = useCallback(
    (nodeId) => {
      const node = nodesRef.current.find((candidate) => candidate.id === nodeId);
      if (!node) return;
      setNodes((current) => current.map((other) => ({ ...other, selected: other.id === nodeId })));
      const w = (node.measured && node.measured.width) || NODE_W;
      const h = (node.measured && node.measured.height) || NODE_H;
      flow.setCenter(node.position.x + w / 2, node.position.y + h / 2, { zoom: Math.max(flow.getZoom(), 0.9), duration: 200 });
      window.setTimeout(() => {
        const element = document.querySelector(`.react-flow__node[data-id="${CSS.escape(nodeId)}"]`);
        if (element) element.focus();
      }, 250);
    },
    [flow],
  );

  // --- save, versions, run --------------------------------------------------------------------
  const loadVersions = useCallback(
    async (id) => {
      try {
        const list = await api("GET", config.urls.versions.replace("{id}", id));
        setVersions(Array.isArray(list) ? list : list.results || []);
      } catch (error) {
        say(`Could not load the version history: ${errorText(error)}`, "error");
      }
    },
    [config.urls.versions, say],
  );

  useEffect(() => {
    if (pipeline) loadVersions(pipeline.id);
  }, [pipeline && pipeline.id]); // eslint-disable-line react-hooks/exhaustive-deps

  const save = useCallback(async () => {
    const trimmed = name.trim();
    if (!trimmed) {
      say("Give the pipeline a name before saving.", "error");
      document.getElementById("pipeline-name")?.focus();
      return null;
    }
    const message = (document.getElementById("save-message")?.value || "").trim();
    const body = { name: trimmed, description, document: doc, message };
    if (pipeline) body.base_version = forcedBase.current || pipeline.version;
    forcedBase.current = null;
    say("Saving…");
    try {
      const result = pipeline
        ? await api("PATCH", config.urls.pipeline.replace("{id}", pipeline.id), body)
        : await api("POST", config.urls.pipelines, body);
      const next = { id: result.id, name: result.name, description: result.description, version: result.version };
      setPipeline(next);
      setSaved({ text: docText, name: trimmed, description });
      setName(trimmed);
      try {
        window.localStorage.removeItem(draftKey);
        window.localStorage.removeItem(`iliad.editor.draft.${next.id}`);
      } catch {
        /* ignore */
      }
      const messageInput = document.getElementById("save-message");
      if (messageInput) messageInput.value = "";
      if (!pipeline) window.history.replaceState(null, "", config.urls.edit_page.replace("{id}", next.id));
      loadVersions(next.id);
      collab.publishSaved({ number: result.version, by: (config.collab && config.collab.user && config.collab.user.name) || "", at: new Date().toISOString(), text: docText });
      say(`Saved as version ${result.version}.`);
      return next;
    } catch (error) {
      if (error.status === 409 && error.body && error.body.latest) {
        setConflict(error.body);
        say(`Not saved: ${error.body.detail}`, "error");
        return null;
      }
      if (error.body && Array.isArray(error.body.errors)) {
        setIssues(error.body.errors);
        say(`Not saved: the pipeline has ${error.body.errors.length} problem(s); see the list.`, "error");
      } else {
        say(`Not saved: ${errorText(error)}`, "error");
      }
      return null;
    }
  }, [name, description, doc, docText, pipeline, config.urls, config.collab, draftKey, loadVersions, say, collab.publishSaved]);

  /** Merge a refused save: the newest version with this editor's changes since its base re-applied. */
  const mergeConflict = useCallback(async () => {
    if (!conflict || !pipeline) return;
    setMerging(true);
    try {
      const base = await api("GET", `${config.urls.versions.replace("{id}", pipeline.id)}${conflict.base_version}/`);
      const latest = conflict.latest;
      const { document: merged, conflicts } = mergeDocuments(base.document, doc, latest.document);
      setPipeline((current) => ({ ...current, version: latest.number }));
      setSaved((current) => ({ ...current, text: serialise(latest.document) }));
      replaceDocument(merged);
      setConflict(null);
      loadVersions(pipeline.id);
      say(
        `Merged your changes into version ${latest.number}${conflicts.length ? ` (both changed ${conflicts.join(", ")}: yours kept)` : ""}. Review, then save.`,
      );
    } catch (error) {
      say(`Could not merge: ${errorText(error)}`, "error");
    } finally {
      setMerging(false);
    }
  }, [conflict, pipeline, config.urls.versions, doc, replaceDocument, loadVersions, say]);

  const keepMine = useCallback(() => {
    if (!conflict) return;
    forcedBase.current = conflict.latest.number;
    setConflict(null);
    save();
  }, [conflict, save]);

  const restoreVersion = useCallback(
    (version) => {
      replaceDocument(version.document);
      say(`Version ${version.number} is in the editor; save to make it the latest version.`);
    },
    [replaceDocument, say],
  );

  const chooseTemplate = useCallback(
    (template) => {
      if (pipeline || nodesRef.current.length) {
        window.location.assign(`${config.urls.new_page}?template=${encodeURIComponent(template.slug)}`);
        return;
      }
      try {
        replaceDocument(template.document);
        if (!name) setName(template.title);
        if (!description && template.summary) setDescription(template.summary);
        setTemplatesOpen(false);
        say(`Template “${template.title}” loaded; save to keep it.`);
      } catch (error) {
        say(`The template cannot be loaded: ${error.message}`, "error");
      }
    },
    [pipeline, config.urls.new_page, replaceDocument, name, description, say],
  );

  // Opening /pipelines/new/?template=slug loads that template.
  useEffect(() => {
    if (!config.template) return;
    api("GET", config.urls.templates)
      .then((data) => {
        const list = Array.isArray(data) ? data : (data && data.results) || [];
        const template = list.find((entry) => entry.slug === config.template);
        if (!template) return say(`There is no template “${config.template}”.`, "error");
        replaceDocument(template.document, { baseline: true });
        setName(template.title);
        setDescription(template.summary || "");
        say(`Template “${template.title}” loaded; save to keep it.`);
      })
      .catch((error) => say(`Could not load the template: ${errorText(error)}`, "error"));
  }, []); // eslint-disable-line react-hooks/exhaustive-deps

  // --- import / export ----------------------------------------------------------------------
  const importFile = useCallback(
    async (file) => {
      if (!file) return;
      try {
        const parsed = JSON.parse(await file.text());
        const graph = replaceDocument(parsed);
        say(`Imported ${graph.nodes.length} node(s) and ${graph.edges.length} connection(s) from ${file.name}; checking…`);
      } catch (error) {
        const reason = error instanceof ImportError || error instanceof SyntaxError ? error.message : String(error);
        say(`Cannot import ${file.name}: ${reason}`, "error");
      }
    },
    [replaceDocument, say],
  );

  const exportFile = useCallback(() => {
    const blob = new Blob([JSON.stringify(doc, null, 2) + "\n"], { type: "application/json" });
    const url = URL.createObjectURL(blob);
    const link = document.createElement("a");
    link.href = url;
    link.download = `${slugify(name)}.json`;
    document.body.appendChild(link);
    link.click();
    link.remove();
    window.setTimeout(() => URL.revokeObjectURL(url), 1000);
    say("Exported the pipeline document.");
  }, [doc, name, say]);

  // --- drafts and the unsaved-changes warning ------------------------------------------------
  useEffect(() => {
    try {
      const stored = JSON.parse(window.localStorage.getItem(draftKey) || "null");
      if (stored && stored.text && stored.text !== initial.text && !config.template && !readOnly) setDraft(stored);
    } catch {
      /* ignore */
    }
  }, []); // eslint-disable-line react-hooks/exhaustive-deps

  useEffect(() => {
    const timer = window.setTimeout(() => {
      try {
        if (dirty && !draft) window.localStorage.setItem(draftKey, JSON.stringify({ text: docText, name, description, at: new Date().toISOString() }));
        else if (!dirty) window.localStorage.removeItem(draftKey);
      } catch {
        /* ignore */
      }
    }, 500);
    return () => window.clearTimeout(timer);
  }, [dirty, draft, docText, name, description, draftKey]);

  useEffect(() => {
    if (!dirty) return undefined;
    const warn = (event) => {
      event.preventDefault();
      event.returnValue = "";
    };
    window.addEventListener("beforeunload", warn);
    return () => window.removeEventListener("beforeunload", warn);
  }, [dirty]);

  // --- keyboard shortcuts -------------------------------------------------------------------
  useEffect(() => {
    const onKey = (event) => {
      const mod = event.ctrlKey || event.metaKey;
      const key = event.key.toLowerCase();
      if (mod && key === "s") {
        event.preventDefault();
        if (!readOnly) save();
        return;
      }
      if (isTyping(event.target)) return;
      if (readOnly) {
        if (!mod && !event.altKey && key === "f") fit();
        return;
      }
      if (mod && key === "z" && !event.shiftKey) {
        event.preventDefault();
        doUndo();
      } else if (mod && (key === "y" || (key === "z" && event.shiftKey))) {
        event.preventDefault();
        doRedo();
      } else if (mod && key === "c") {
        event.preventDefault();
        copySelection();
      } else if (mod && key === "v") {
        event.preventDefault();
        paste();
      } else if (mod && key === "a" && event.target.closest && event.target.closest(".ed-canvas")) {
        event.preventDefault();
        selectAll();
      } else if (!mod && !event.altKey && key === "f") {
        fit();
      } else if (!mod && !event.altKey && key === "l" && event.shiftKey) {
        autoLayout();
      } else if (key === "escape") {
        if (pending) {
          setPending(null);
          say("Connection cancelled.");
        }
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [save, doUndo, doRedo, copySelection, paste, selectAll, fit, autoLayout, pending, say, readOnly]);

  // --- readiness signal (tests and the benchmark wait for it) -------------------------------
  useEffect(() => {
    performance.mark("iliad-editor-mounted");
  }, []);
  useEffect(() => {
    if (flowReady) performance.mark("iliad-editor-flow-init");
  }, [flowReady]);
  useEffect(() => {
    if (nodesInitialized) performance.mark("iliad-editor-nodes-measured");
  }, [nodesInitialized]);
  useEffect(() => {
    if (ready || !flowReady || (nodes.length > 0 && !nodesInitialized)) return;
    window.requestAnimationFrame(() => {
      const root = document.getElementById("editor-root");
      if (root) root.dataset.ready = "true";
      performance.mark("iliad-editor-ready");
      setReady(true);
    });
  }, [ready, flowReady, nodesInitialized, nodes.length]);

  // ?node=<id> (e.g. "Open in editor at this node" on a run page): select and centre that node once.
  const focusedFromUrl = useRef(false);
  useEffect(() => {
    if (!ready || focusedFromUrl.current) return;
    focusedFromUrl.current = true;
    const nodeId = new URLSearchParams(window.location.search).get("node");
    if (!nodeId) return;
    if (nodesRef.current.some((node) => node.id === nodeId)) focusNode(nodeId);
    else say(`This pipeline has no node "${nodeId}".`, "error");
  }, [ready, focusNode, say]);

  // --- drag and drop from the palette -------------------------------------------------------
  const onDragOver = useCallback((event) => {
    if (event.dataTransfer.types.includes(DRAG_TYPE)) {
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
    }
  }, []);
  const onDrop = useCallback(
    (event) => {
      const value = event.dataTransfer.getData(DRAG_TYPE);
      if (!value || readOnly) return;
      event.preventDefault();
      const [blockId, version] = value.split("@");
      const position = flow.screenToFlowPosition({ x: event.clientX, y: event.clientY });
      addBlock(blockId, version, { x: position.x - NODE_W / 2, y: position.y - 30 });
    },
    [flow, addBlock, readOnly],
  );

  // The palette and the side panel fold away to give the canvas the room (remembered per browser).
  const [folds, setFolds] = useState(() => {
    try {
      return { left: true, side: true, ...JSON.parse(window.localStorage.getItem(FOLDS_KEY) || "{}") };
    } catch {
      return { left: true, side: true };
    }
  });
  const toggleFold = useCallback((which) => {
    setFolds((current) => {
      const next = { ...current, [which]: !current[which] };
      try {
        window.localStorage.setItem(FOLDS_KEY, JSON.stringify(next));
      } catch {
        /* private mode: not remembered */
      }
      return next;
    });
  }, []);
  const bodyColumns = [!readOnly && folds.left ? "250px" : null, "minmax(0, 1fr)", folds.side ? "360px" : null]
    .filter(Boolean)
    .join(" ");
  const onInit = useCallback(() => setFlowReady(true), []);
  const startDragging = useCallback(() => setDragging(true), []);
  const stopDragging = useCallback(() => setDragging(false), []);
  const clearPending = useCallback(() => setPending(null), []);
  const selected = useMemo(() => nodes.filter((node) => node.selected), [nodes]);
  const editorContext = useMemo(() => ({ catalog, pending, onPortActivate }), [catalog, pending, onPortActivate]);

  return (
    <EditorContext.Provider value={editorContext}>
      <IssuesContext.Provider value={issuesContext}>
        <div className="iliad-editor">
          <div className="ed-toolbar" role="toolbar" aria-label="Pipeline actions">
            <label htmlFor="pipeline-name" className="visually-hidden">Pipeline name</label>
            <input id="pipeline-name" className="name" placeholder="Pipeline name" value={name} readOnly={readOnly} onChange={(event) => setName(event.target.value)} />
            <span className="badge" aria-live="polite">
              {pipeline ? `v${pipeline.version}${dirty ? " · unsaved changes" : ""}` : "not saved yet"}
            </span>
            {readOnly ? (
              <span className="badge read-only" data-testid="read-only">Read-only: you may view this pipeline and comment; the others' changes appear live</span>
            ) : null}
            {readOnly ? null : (<>
            <label htmlFor="save-message" className="visually-hidden">Version message</label>
            <input id="save-message" className="message" placeholder="What changed? (optional)" />
            <button type="button" onClick={save} title="Save (Ctrl+S)">Save</button>
            <span className="sep" aria-hidden="true" />
            <button type="button" className="secondary" onClick={doUndo} disabled={!undoable} title={collab.shared ? "Undo your last change (Ctrl+Z); the others' changes stay" : "Undo (Ctrl+Z)"}>Undo</button>
            <button type="button" className="secondary" onClick={doRedo} disabled={!redoable} title="Redo (Ctrl+Shift+Z or Ctrl+Y)">Redo</button>
            <button type="button" className="secondary" onClick={autoLayout} title="Auto-layout (Shift+L)">Auto-layout</button>
            <button type="button" className="secondary" onClick={fit} title="Zoom to fit (F)">Fit</button>
            <span className="sep" aria-hidden="true" />
            <FileMenu onImport={importFile} onExport={exportFile} onTemplates={() => setTemplatesOpen(true)} />
            <span className="sep" aria-hidden="true" />
            <button type="button" className="run" onClick={() => setRunOpen(true)} disabled={!nodes.length}>Run…</button>
            </>)}
            {readOnly ? <button type="button" className="secondary" onClick={fit} title="Zoom to fit (F)">Fit</button> : null}
          </div>
          {draft && !readOnly ? (
            <div className="ed-banner" role="region" aria-label="Unsaved draft">
              Unsaved changes from {new Date(draft.at).toLocaleString()} were found in this browser.{" "}
              <button type="button" onClick={() => { replaceDocument(JSON.parse(draft.text)); if (draft.name) setName(draft.name); if (draft.description !== undefined) setDescription(draft.description); setDraft(null); say("Draft restored."); }}>Restore them</button>{" "}
              <button type="button" className="secondary" onClick={() => { try { window.localStorage.removeItem(draftKey); } catch { /* ignore */ } setDraft(null); }}>Discard</button>
            </div>
          ) : null}
          <div className={`ed-body${readOnly ? " read-only" : ""}`} style={{ gridTemplateColumns: bodyColumns }}>
            {readOnly || !folds.left ? null : (
              <div className="ed-left">
                <Palette catalog={catalog} categories={config.categories} onAdd={(blockId, version) => addBlock(blockId, version, null, { focus: true })} />
                <DataBrowser selected={selected} catalog={catalog} onParams={onParams} onVersion={onVersion} say={say} onAdd={(blockId, version, params) => addBlock(blockId, version, null, { params })} />
              </div>
            )}
            <section className="ed-canvas" aria-label="Pipeline canvas" ref={canvasRef} onDragOver={onDragOver} onDrop={onDrop} onMouseMove={(event) => collab.pointerMoved(flow.screenToFlowPosition({ x: event.clientX, y: event.clientY }))} onMouseLeave={() => collab.pointerMoved(null)}>
              <ReactFlow
                nodes={nodes}
                edges={edges}
                nodeTypes={nodeTypes}
                onNodesChange={onNodesChange}
                onDelete={announceDeleted}
                onEdgesChange={onEdgesChange}
                onConnect={connect}
                onConnectEnd={onConnectEnd}
                isValidConnection={isValidConnection}
                onInit={onInit}
                nodesDraggable={!readOnly}
                nodesConnectable={!readOnly}
                edgesReconnectable={!readOnly}
                onNodeDragStart={startDragging}
                onNodeDragStop={stopDragging}
                onSelectionDragStart={startDragging}
                onSelectionDragStop={stopDragging}
                onPaneClick={clearPending}
                deleteKeyCode={readOnly ? null : DELETE_KEYS}
                multiSelectionKeyCode={MULTI_SELECT_KEYS}
                selectionKeyCode="Shift"
                fitView={initial.nodes.length > 0}
                fitViewOptions={FIT_VIEW_OPTIONS}
                minZoom={0.05}
                defaultEdgeOptions={DEFAULT_EDGE_OPTIONS}
                connectionRadius={24}
                proOptions={PRO_OPTIONS}
              >
                <Grid />
                {ready ? <MiniMap position="top-right" pannable zoomable ariaLabel="Overview of the pipeline" /> : null}
                <Controls aria-label="Zoom controls" />
                <PresenceLayer peers={collab.peers} nodes={nodes} />
                <CommentBadges comments={comments.comments} nodes={nodes} onOpen={setCommentsFor} />
              </ReactFlow>
              {commentsFor !== undefined && comments.enabled ? (
                <div className="comments-float">
                  <CommentsPanel comments={comments.comments} nodeId={commentsFor} nodeIds={nodes.map((node) => node.id)} onNode={setCommentsFor} onClose={() => setCommentsFor(undefined)} post={comments.post} patch={comments.patch} say={say} />
                </div>
              ) : null}
              <div className="ed-folds">
                {readOnly ? null : (
                  <button type="button" className="secondary small" aria-expanded={folds.left} onClick={() => toggleFold("left")}>
                    {folds.left ? "« Hide blocks" : "» Show blocks"}
                  </button>
                )}
                <button type="button" className="secondary small" aria-expanded={folds.side} onClick={() => toggleFold("side")}>
                  {folds.side ? "Hide details »" : "Show details «"}
                </button>
                {comments.enabled ? (
                  <button type="button" className="secondary small" data-testid="comments-button" data-live={comments.live ? "true" : "false"} aria-pressed={commentsFor !== undefined} onClick={() => setCommentsFor((current) => (current === undefined ? (selectedIds.length === 1 ? selectedIds[0] : null) : undefined))}>
                    Comments ({openThreads})
                  </button>
                ) : null}
                <PresenceBar status={collab.status} peers={collab.peers} me={config.collab && config.collab.user} />
              </div>
              <div className={`ed-hint${hint ? " visible" : ""}`} aria-hidden={hint ? "false" : "true"}>{hint}</div>
              <div className={`ed-status${statusFaded ? " faded" : ""}`} data-testid="editor-status">
                <p role="status" className="status-info">{status.kind === "error" ? "" : status.text}</p>
                <p role="alert" className="status-error">{status.kind === "error" ? status.text : ""}</p>
              </div>
              {nodes.length === 0 && !readOnly ? (
                <div className="ed-empty">
                  <p>Drag blocks here from the list on the left, or press Enter on one to add it.</p>
                </div>
              ) : null}
            </section>
            {folds.side ? <SidePanel
              readOnly={readOnly}
              selected={selected}
              catalog={catalog}
              issues={issueIndex.list}
              issuesByNode={issueIndex.byNode}
              choices={choices}
              extents={extents}
              checking={checking}
              pipeline={pipeline}
              versions={versions}
              description={description}
              onDescription={setDescription}
              onParams={onParams}
              onLabel={onLabel}
              onTarget={onTarget}
              onVersion={onVersion}
              onRename={onRename}
              onDelete={deleteNodes}
              onCopy={copySelection}
              onFocusIssue={(issue) => issue.nodeRef && focusNode(issue.nodeRef)}
              onFix={applyFix}
              onRestore={restoreVersion}
            /> : null}
          </div>
          <RunDialog open={runOpen} onClose={() => setRunOpen(false)} config={config} pipeline={pipeline} dirty={dirty} onSave={save} />
          <ConflictDialog conflict={conflict} busy={merging} onMerge={mergeConflict} onKeepMine={keepMine} onClose={() => setConflict(null)} />
          <TemplateDialog open={templatesOpen} onClose={() => setTemplatesOpen(false)} config={config} onChoose={chooseTemplate} />
        </div>
      </IssuesContext.Provider>
    </EditorContext.Provider>
  );
}

export default function App(props) {
  return (
    <ReactFlowProvider>
      <Editor {...props} />
    </ReactFlowProvider>
  );
}
