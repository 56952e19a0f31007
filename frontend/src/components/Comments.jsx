// Comments pinned to nodes and to the pipeline: a badge on each node with open threads, and a
// panel with the threads (all, or one node's), replies, @mentions, resolve and reopen.
import { useCallback, useEffect, useMemo, useState } from "react";
import { ViewportPortal } from "@xyflow/react";
import { api, errorText } from "../api.js";
import "../collab/collab.css";

const RETRY_MS = [500, 1000, 2000, 5000];

function feedUrl(config, pipelineId) {
  if (!config.collab || !config.collab.url) return null;
  const url = new URL(`${config.collab.url}/${pipelineId}/comments`, window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.href;
}

/**
 * The pipeline's comments, kept current live: the server pushes "a comment changed" over
 * /ws/collab/pipelines/<id>/comments and the list is reloaded (also after every reconnect, so
 * nothing missed while offline stays missing). No polling. Null pipeline id: none yet.
 */
export function useComments(config, pipelineId) {
  const [comments, setComments] = useState([]);
  const [error, setError] = useState("");
  const [live, setLive] = useState(false);
  const url = pipelineId && config.urls.comments ? config.urls.comments.replace("{id}", pipelineId) : null;
  const refresh = useCallback(async () => {
    if (!url) return;
    try {
      setComments(await api("GET", url));
      setError("");
    } catch (caught) {
      setError(errorText(caught));
    }
  }, [url]);
  useEffect(() => {
    if (!url) return undefined;
    refresh();
    const address = feedUrl(config, pipelineId);
    if (!address) return undefined;
    let socket = null;
    let retry = null;
    let attempts = 0;
    let closed = false;
    const open = () => {
      socket = new WebSocket(address);
      socket.onopen = () => {
        if (attempts > 0) refresh(); // what changed while the feed was down
        attempts = 0;
        setLive(true);
      };
      socket.onmessage = () => refresh();
      socket.onclose = () => {
        setLive(false);
        if (closed) return;
        retry = window.setTimeout(open, RETRY_MS[Math.min(attempts, RETRY_MS.length - 1)]);
        attempts += 1;
      };
    };
    open();
    return () => {
      closed = true;
      window.clearTimeout(retry);
      if (socket) socket.close();
    };
  }, [url, refresh, config, pipelineId]);
  const post = useCallback(
    async (body) => {
      const created = await api("POST", url, body);
      await refresh();
      return created;
    },
    [url, refresh],
  );
  const patch = useCallback(
    async (id, body) => {
      await api("PATCH", `${url}${id}/`, body);
      await refresh();
    },
    [url, refresh],
  );
  return { comments, error, post, patch, live, enabled: Boolean(url) };
}

/** Threads (first comments) with their replies, newest activity last. */
export function threadsOf(comments) {
  const threads = new Map();
  for (const comment of comments) {
    if (comment.parent === null) threads.set(comment.id, { ...comment, replies: [] });
  }
  for (const comment of comments) {
    if (comment.parent !== null && threads.has(comment.parent)) threads.get(comment.parent).replies.push(comment);
  }
  return [...threads.values()];
}

/** Open-thread count per node, as badges on the canvas (click: that node's threads). */
export function CommentBadges({ comments, nodes, onOpen }) {
  const counts = useMemo(() => {
    const byNode = new Map();
    for (const thread of threadsOf(comments)) {
      if (thread.node_id && !thread.resolved) byNode.set(thread.node_id, (byNode.get(thread.node_id) || 0) + 1);
    }
    return byNode;
  }, [comments]);
  if (!counts.size) return null;
  return (
    <ViewportPortal>
      {nodes.map((node) => {
        const count = counts.get(node.id);
        if (!count) return null;
        const width = (node.measured && node.measured.width) || 230;
        return (
          <button
            type="button"
            key={node.id}
            className="comment-badge"
            data-testid="comment-badge"
            data-node={node.id}
            style={{ transform: `translate(${node.position.x + width - 12}px, ${node.position.y - 12}px)` }}
            onClick={() => onOpen(node.id)}
            aria-label={`${count} open comment thread${count > 1 ? "s" : ""} on ${node.id}`}
          >
            {count}
          </button>
        );
      })}
    </ViewportPortal>
  );
}

function Body({ text }) {
  const parts = String(text).split(/(@[\w.+-]+)/g);
  return (
    <p className="body">
      {parts.map((part, index) => (part.startsWith("@") ? <span key={index} className="mention">{part}</span> : part))}
    </p>
  );
}

function Thread({ thread, onReply, onResolve }) {
  const [reply, setReply] = useState("");
  return (
    <li className={`thread${thread.resolved ? " resolved" : ""}`} data-testid="comment-thread" data-node={thread.node_id}>
      <div className="meta">
        <strong>{thread.author || "someone"}</strong> on {thread.node_id ? <code>{thread.node_id}</code> : "the pipeline"} ·{" "}
        {new Date(thread.created_at).toLocaleString()}
        {thread.resolved ? ` · resolved by ${thread.resolved_by || "someone"}` : ""}
      </div>
      <Body text={thread.body} />
      {thread.replies.map((comment) => (
        <div key={comment.id} className="reply">
          <div className="meta"><strong>{comment.author || "someone"}</strong> · {new Date(comment.created_at).toLocaleString()}</div>
          <Body text={comment.body} />
        </div>
      ))}
      <form
        className="row"
        onSubmit={(event) => {
          event.preventDefault();
          if (reply.trim()) onReply(thread, reply).then((ok) => ok && setReply(""));
        }}
      >
        <label className="visually-hidden" htmlFor={`reply-${thread.id}`}>Reply to {thread.author}</label>
        <input id={`reply-${thread.id}`} value={reply} onChange={(event) => setReply(event.target.value)} placeholder="Reply…" />
        <button type="submit" className="small secondary">Reply</button>
        <button type="button" className="small secondary" onClick={() => onResolve(thread, !thread.resolved)}>
          {thread.resolved ? "Reopen" : "Resolve"}
        </button>
      </form>
    </li>
  );
}

/** The side list of threads: ``nodeId`` shows one node's (with a composer pinned to it). */
export function CommentsPanel({ comments, nodeId, nodeIds, onNode, onClose, post, patch, say }) {
  const [text, setText] = useState("");
  const [showResolved, setShowResolved] = useState(false);
  const threads = threadsOf(comments).filter((thread) => (nodeId === null ? true : thread.node_id === nodeId));
  const visible = threads.filter((thread) => showResolved || !thread.resolved);
  const send = async (body) => {
    try {
      await post(body);
      return true;
    } catch (caught) {
      say(`Comment not posted: ${errorText(caught)}`, "error");
      return false;
    }
  };
  return (
    <section className="comments" aria-labelledby="comments-title" data-testid="comments-panel">
      <div className="row">
        <h2 id="comments-title">Comments {nodeId ? <>on <code>{nodeId}</code></> : "(all)"}</h2>
        <button type="button" className="small secondary" onClick={onClose}>Close</button>
      </div>
      <div className="row">
        <label htmlFor="comments-node">Show</label>
        <select id="comments-node" value={nodeId === null ? "*" : nodeId} onChange={(event) => onNode(event.target.value === "*" ? null : event.target.value)}>
          <option value="*">all threads</option>
          <option value="">the whole pipeline</option>
          {nodeIds.map((id) => <option key={id} value={id}>node {id}</option>)}
        </select>
        <label><input type="checkbox" checked={showResolved} onChange={(event) => setShowResolved(event.target.checked)} /> resolved too</label>
      </div>
      <ul className="threads" style={{ listStyle: "none", padding: 0 }}>
        {visible.map((thread) => (
          <Thread
            key={thread.id}
            thread={thread}
            onReply={(parent, body) => send({ body, parent: parent.id })}
            onResolve={(target, resolved) => patch(target.id, { resolved }).catch((caught) => say(errorText(caught), "error"))}
          />
        ))}
      </ul>
      {!visible.length ? <p className="meta">No {showResolved ? "" : "open "}comments here yet.</p> : null}
      <form
        onSubmit={(event) => {
          event.preventDefault();
          if (text.trim()) send({ body: text, node_id: nodeId || "" }).then((ok) => ok && setText(""));
        }}
      >
        <label htmlFor="comment-new">New comment on {nodeId ? `node ${nodeId}` : "the pipeline"} (@name mentions someone)</label>
        <textarea id="comment-new" value={text} onChange={(event) => setText(event.target.value)} />
        <button type="submit">Comment</button>
      </form>
    </section>
  );
}
