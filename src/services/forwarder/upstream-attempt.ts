import type { IncomingHttpHeaders } from 'node:http';
import type zlib from 'node:zlib';
import type { Dispatcher } from 'undici';
import type { EndpointConfig, Timeouts } from '../../config/types.js';
import { AttemptTimeoutReason, ClientClosedReason, HedgeLostReason } from '../core/abort-reasons.js';
import type { AttemptRun } from '../core/attempt-run.js';
import type { LifetimeListener } from '../core/lifetime.js';
import type { AttemptFailure, AttemptResult } from '../core/outcomes.js';
import { PhaseTimer, type TimerTarget } from '../core/phase-timer.js';
import { setEventStreamHeaders } from '../core/sse.js';
import {
  brokenByErrorEvent,
  brokenByGarbage,
  brokenByTimeout,
  brokenByTransport,
  brokenByTruncation,
} from '../streaming/broken-stream.js';
import { checkJsonAnswer, sendJsonAnswer } from '../streaming/json-answer.js';
import { answerChars, countEvents, noteStreamUsage, noteUsage, takeUsageChunks } from '../streaming/usage.js';
import type { ModelRename } from '../streaming/model-rename.js';
import { doneLineAt, findErrorEvent, MAX_HELD_BYTES, SseFramer } from '../streaming/sse-framing.js';
import { transportFailure, type Forwarder } from './forwarder.js';
import { upstreamHttpFailure } from './upstream-error.js';
import type { AnswerTranslation } from '../providers/provider.js';
import { decoderFor, UpstreamLink } from './upstream-link.js';

/** One attempt of a request on one endpoint. */
export interface AttemptInput {
  endpoint: EndpointConfig;
  /** The endpoint's timeouts with the request's overrides applied. */
  timeouts: Timeouts;
  /** The request's attempt number (for `x-gateway-attempts`). */
  attempt: number;
  /** The path below the endpoint's base URL (`/v1/chat/completions`, `/v1/embeddings`…). */
  path: string;
  body: Buffer;
  headers: Record<string, string>;
  /** The endpoint's own id for the model, when it differs: its answers are given the public id. */
  rename?: ModelRename | undefined;
  /** A provider with its own protocol: its answer turned into OpenAI's as it comes. */
  answer?: AnswerTranslation | undefined;
  forwarder: Forwarder;
  /** The request the attempt works for. */
  run: AttemptRun;
}

/** The chat completions path: the default route, and the one continuations use. */
export const CHAT_PATH = '/v1/chat/completions';

/** Error bodies are read only this far: enough for any real message, bounded against a hostile upstream. */
const MAX_ERROR_BODY_BYTES = 64 * 1024;
/** A non-streamed answer larger than this is refused rather than buffered. */
const MAX_JSON_ANSWER_BYTES = 64 * 1024 * 1024;
/**
 * After [DONE] the client's answer is complete, but the upstream's HTTP response usually ends a moment
 * later (its last chunk comes in another write). Waiting for that keeps the connection for the next
 * request; an upstream that keeps the response open past this is cut.
 */
const END_AFTER_DONE_MS = 1_000;
/** The reason given to undici when an attempt that has its result stops its upstream request. */
const ATTEMPT_OVER = new Error('the attempt is over');
const DATA = Buffer.from('data:');

/**
 * One attempt on one endpoint: send, wait for the first byte under the first-byte timeout, then commit
 * and relay (streams) or check and send (JSON). Settles with the attempt's result; rejects only with
 * the request's own abort reason (client gone, request deadline) or HedgeLostReason.
 */
export function runAttempt(input: AttemptInput): AttemptHandle {
  return new Attempt(input);
}

/** A running attempt: its result, and a way to stop it as the loser of a hedge. */
export interface AttemptHandle {
  /** Settles with the attempt's result; rejects only when the whole request is over (client gone, deadline). */
  readonly result: Promise<AttemptResult>;
  cancel(): void;
}

type Phase =
  /** Waiting for the status line and headers. */
  | 'headers'
  /** A non-2xx answer: its body is read for the message. */
  | 'error-body'
  /** A JSON answer, buffered whole before commit so that a bad one can still be retried elsewhere. */
  | 'json'
  /** An event stream, relayed event by event from its first whole event (the commit). */
  | 'stream'
  /** The client's answer is complete; the upstream response is let to end. */
  | 'after';

/**
 * The attempt as an undici dispatch handler: undici calls it for the response start, every chunk and
 * the end or error, and the attempt reacts at once (no response stream, no promise per chunk).
 * Everything it arms (timers, the request-signal listener, a drain listener) is released when it
 * settles; the upstream request itself is aborted then unless it is just finishing after [DONE].
 */
class Attempt implements AttemptHandle, LifetimeListener, TimerTarget {
  readonly result: Promise<AttemptResult>;
  /** What undici holds on to; cut from the attempt once it is over (see UpstreamLink). */
  private readonly link = new UpstreamLink(this);
  private resolve!: (result: AttemptResult) => void;
  private reject!: (reason: Error) => void;
  private settled = false;
  /** The upstream request, once undici has started it; abort() before that is remembered. */
  private call: Dispatcher.DispatchController | undefined;
  private pendingAbort: Error | undefined;
  /** The upstream response has ended or failed: nothing left to abort. */
  private complete = false;
  private phase: Phase = 'headers';
  private readonly timer: PhaseTimer;
  private throughput: NodeJS.Timeout | undefined;
  private windowBytes = 0;
  private readonly startedAt: number;
  private ttfbMs = -1;
  private status = 0;
  private headers: IncomingHttpHeaders = {};
  private parts: Buffer[] = [];
  private size = 0;
  private decoder: zlib.Gunzip | zlib.Inflate | zlib.BrotliDecompress | undefined;
  /** Whole events out of the stream's chunks (set in the stream phase). */
  private framer: SseFramer | undefined;
  private waitingForDrain = false;
  /** Created on the first wait for the client to drain (rare). */
  private drainListener: (() => void) | undefined;
  private attemptEndsAt = Number.POSITIVE_INFINITY;

  constructor(private readonly input: AttemptInput) {
    this.result = new Promise<AttemptResult>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    const { timeouts } = input;
    const { lifetime } = input.run;
    this.startedAt = input.run.now();
    input.run.upstreamStarted();
    this.timer = new PhaseTimer(this);
    if (lifetime.reason) {
      this.settle(lifetime.reason);
      return;
    }
    lifetime.on(this);
    // One timer: the phase's timeout and the sooner of the endpoint's total and the request's deadline
    // (the phase first: a later deadline then keeps the timer armed for the phase).
    this.attemptEndsAt = performance.now() + timeouts.totalMs;
    this.timer.arm('first-byte', timeouts.firstByteMs);
    this.timer.setDeadline(Math.min(this.attemptEndsAt, lifetime.deadlineAt));
    // Last: undici may call back synchronously (a closed pool fails at once).
    input.forwarder.dispatch(
      {
        endpoint: input.endpoint,
        method: 'POST',
        path: input.path,
        headers: input.headers,
        body: input.body,
      },
      this.link,
    );
  }

  // ---- what the attempt is told ----

  /** Stops this attempt as the loser of a hedge. */
  cancel(): void {
    this.abort(new HedgeLostReason());
  }

  onLifetimeEnd(reason: Error): void {
    this.abort(reason);
  }

  onPhaseTimeout(reason: AttemptTimeoutReason): void {
    this.abort(reason);
  }

  /** The sooner of the endpoint's total and the request's deadline has come. */
  onDeadline(): void {
    const { timeouts } = this.input;
    const { lifetime } = this.input.run;
    if (this.attemptEndsAt < lifetime.deadlineAt)
      this.abort(new AttemptTimeoutReason('attempt-total', timeouts.totalMs));
    else lifetime.expire();
  }

  // ---- undici's handler interface ----

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.call = controller;
    if (this.pendingAbort) controller.abort(this.pendingAbort);
  }

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
  ): void {
    if (this.settled) return;
    this.status = statusCode;
    this.headers = headers;
    const encoding = String(headers['content-encoding'] ?? 'identity')
      .trim()
      .toLowerCase();
    if (encoding !== 'identity' && encoding !== '') {
      const decoder = decoderFor(encoding);
      if (!decoder) {
        this.fail({ kind: 'bad-response', message: `unsupported content-encoding ${encoding}` });
        return;
      }
      this.decoder = decoder;
      decoder.on('data', (chunk: Buffer) => this.body(chunk));
      decoder.once('end', () => this.bodyEnd());
      decoder.once('error', (err) => this.decodingFailed(err));
    }
    if (statusCode < 200 || statusCode >= 300) this.phase = 'error-body';
    else if (String(headers['content-type'] ?? '').includes('text/event-stream')) {
      this.phase = 'stream';
      this.framer = new SseFramer();
    } else this.phase = 'json';
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.settled && this.phase !== 'after') return;
    if (this.decoder) this.decoder.write(chunk);
    else this.body(chunk);
  }

  onResponseEnd(): void {
    this.complete = true;
    if (this.decoder) this.decoder.end();
    else this.bodyEnd();
    this.detachIfOver();
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    this.complete = true;
    this.timer.clear();
    if (!this.settled) {
      if (this.phase === 'stream' && this.ttfbMs >= 0)
        this.settle(brokenByTransport(transportFailure(err).message));
      else this.settle({ type: 'failed', failure: transportFailure(err) });
    }
    this.detachIfOver();
  }

  /** Settled, and the upstream request finished or aborted: undici has nothing more to tell. */
  private detachIfOver(): void {
    if (this.settled && this.complete) this.link.attempt = undefined;
  }

  // ---- the answer ----

  private body(chunk: Buffer): void {
    switch (this.phase) {
      case 'stream':
        this.relay(chunk);
        return;
      case 'json':
        if (this.ttfbMs < 0) this.ttfbMs = this.input.run.now() - this.startedAt;
        this.timer.arm('idle', this.input.timeouts.idleMs);
        this.size += chunk.length;
        if (this.size > MAX_JSON_ANSWER_BYTES) {
          this.fail({ kind: 'bad-response', message: 'answer larger than 64 MiB' });
          return;
        }
        this.parts.push(chunk);
        return;
      case 'error-body': {
        const room = MAX_ERROR_BODY_BYTES - this.size;
        this.parts.push(chunk.length > room ? chunk.subarray(0, room) : chunk);
        this.size += Math.min(chunk.length, room);
        if (this.size >= MAX_ERROR_BODY_BYTES) this.errorBodyEnd();
        return;
      }
      case 'headers':
      case 'after':
        return;
    }
  }

  private bodyEnd(): void {
    switch (this.phase) {
      case 'json':
        this.jsonEnd();
        return;
      case 'error-body':
        this.errorBodyEnd();
        return;
      case 'stream': {
        if (this.settled) return;
        // A provider that ends its stream by closing it: the translation's last events.
        const rest = this.input.answer?.end();
        if (rest && rest.length > 0) {
          this.relayEvents(rest);
          if (this.settled) return;
        }
        // A [DONE] line without its blank line is completed; any other unfinished event is dropped.
        const tail = this.framer!.end();
        if (this.ttfbMs < 0) this.fail({ kind: 'bad-response', message: 'upstream sent an empty answer' });
        else if (tail) this.finishStream(tail);
        else this.settle(brokenByTruncation());
        return;
      }
      case 'after':
        this.timer.clear();
        return;
      case 'headers':
        return;
    }
  }

  /**
   * Writes the whole events of every chunk as they come (an unfinished event waits for its end),
   * committing with the first, and ends at [DONE]. An error event is a break, never relayed.
   */
  private relay(chunk: Buffer): void {
    const { input } = this;
    const framer = this.framer!;
    this.windowBytes += chunk.length;
    const events = framer.push(chunk);
    if (framer.heldBytes > MAX_HELD_BYTES) {
      this.garbled('an event longer than 1 MiB, or no line breaks');
      return;
    }
    if (!this.waitingForDrain) this.timer.arm('idle', input.timeouts.idleMs);
    this.relayEvents(input.answer ? input.answer.events(events) : events);
  }

  /** Relays whole OpenAI events: the commit with the first, the end at [DONE]. */
  private relayEvents(whole: Buffer): void {
    const { input } = this;
    let events = whole;
    if (events.length === 0) return;
    const error = findErrorEvent(events);
    if (error) events = events.subarray(0, error.start);
    if (input.rename) events = input.rename.events(events);
    if (input.run.hideUsage) events = takeUsageChunks(events, input.run.trace);
    const done = error ? -1 : doneLineAt(events);
    if (this.ttfbMs < 0) {
      const firstData = events.indexOf(DATA);
      if (firstData < 0 || (done >= 0 && firstData >= done)) {
        // Nothing for the client yet (comments are dropped: heartbeats keep its connection alive), so
        // a failure here is invisible and another endpoint can answer instead.
        if (error) {
          this.fail({
            kind: 'error-event',
            message: `the model server sent an error event: ${error.message}`,
          });
        } else if (done >= 0) {
          this.fail({ kind: 'bad-response', message: 'upstream sent an empty answer' });
        }
        return;
      }
      if (!this.commit()) return;
    }
    const { res } = input.run;
    if (res.writableEnded || res.destroyed) {
      this.abort(new ClientClosedReason());
      return;
    }
    if (done >= 0) {
      this.finishStream(events);
      return;
    }
    const flowing = events.length === 0 || res.write(events);
    if (events.length > 0) {
      this.lastEvents = events;
      countEvents(input.run.trace, events);
    }
    input.run.recorder?.feed(events);
    if (error) {
      this.settle(brokenByErrorEvent(error.message));
      return;
    }
    if (flowing) return;
    // The client reads slower than the model writes: stop reading the upstream until it catches up.
    // Waiting on the client is not the upstream's stall, so no idle timer meanwhile.
    this.timer.suspend();
    this.call?.pause();
    this.waitingForDrain = true;
    this.drainListener ??= () => this.onDrain();
    res.once('drain', this.drainListener);
  }

  /** The events relayed before the last ones (the usage chunk may have come with them). */
  private lastEvents: Buffer | undefined;

  /** Takes the right to answer with the first whole event; false (and settled) if a rival has it. */
  private commit(): boolean {
    const { input } = this;
    this.ttfbMs = input.run.now() - this.startedAt;
    const { run } = input;
    if (!run.claim(input, input.endpoint.name, this.status)) {
      this.settle({ type: 'lost' });
      return false;
    }
    if (!run.res.headersSent) {
      setEventStreamHeaders(run.res);
      run.setGatewayHeaders(input.endpoint.name, input.attempt);
    }
    this.startThroughputCheck();
    return true;
  }

  /** The upstream sent bytes that are no event stream: a failure before commit, a break after. */
  private garbled(message: string): void {
    if (this.ttfbMs < 0) this.fail({ kind: 'bad-response', message: `upstream sent ${message}` });
    else this.settle(brokenByGarbage(message));
  }

  /** The [DONE] line has come, in `last`: the answer is complete. */
  private finishStream(last: Buffer): void {
    this.input.run.res.end(last);
    countEvents(this.input.run.trace, last);
    noteStreamUsage(this.input.run.trace, last, this.lastEvents);
    this.settle({
      type: 'done',
      status: this.status,
      ttfbMs: this.ttfbMs,
      latencyMs: this.input.run.now() - this.startedAt,
    });
  }

  private onDrain(): void {
    this.waitingForDrain = false;
    if (this.settled) return;
    this.timer.arm('idle', this.input.timeouts.idleMs);
    this.call?.resume();
  }

  /** After the first byte, a stream slower than the minimum over a whole window is as good as stalled. */
  private startThroughputCheck(): void {
    const { minBytesPerSecond, throughputWindowMs } = this.input.timeouts;
    if (minBytesPerSecond <= 0) return;
    this.throughput = setInterval(() => {
      if (this.windowBytes < (minBytesPerSecond * throughputWindowMs) / 1000) {
        this.abort(new AttemptTimeoutReason('throughput', throughputWindowMs));
      }
      this.windowBytes = 0;
    }, throughputWindowMs);
  }

  private jsonEnd(): void {
    if (this.settled) return;
    const { input } = this;
    if (this.size === 0) {
      this.fail({ kind: 'bad-response', message: 'upstream sent an empty answer' });
      return;
    }
    let answer = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.size);
    this.parts = [];
    if (input.answer) {
      const translated = input.answer.json(answer);
      if (translated === undefined) {
        this.fail({
          kind: 'bad-response',
          message: `upstream sent no ${input.endpoint.provider} answer`,
        });
        return;
      }
      answer = translated;
    }
    const checked = checkJsonAnswer(answer, this.status, this.headers['content-type']);
    if ('failure' in checked) {
      this.fail(checked.failure);
      return;
    }
    let { parsed } = checked;
    let body = answer;
    const renamed = input.rename?.answer(parsed);
    if (renamed) ({ body, parsed } = renamed);
    const { run } = input;
    if (!run.claim(input, input.endpoint.name, this.status)) {
      this.settle({ type: 'lost' });
      return;
    }
    if (!run.res.headersSent) run.setGatewayHeaders(input.endpoint.name, input.attempt);
    noteUsage(run.trace, (parsed as { usage?: unknown }).usage);
    if (run.trace.completionTokens === undefined) run.trace.answerChars = answerChars(parsed);
    sendJsonAnswer(run.res, this.status, body, parsed);
    this.settle({
      type: 'done',
      status: this.status,
      ttfbMs: this.ttfbMs,
      latencyMs: input.run.now() - this.startedAt,
    });
  }

  private errorBodyEnd(): void {
    if (this.settled) return;
    const body = Buffer.concat(this.parts, this.size);
    this.parts = [];
    this.fail(upstreamHttpFailure(this.status, this.headers, body, this.input.endpoint.apiKey));
  }

  private decodingFailed(err: Error): void {
    if (this.settled) return;
    if (this.phase === 'stream' && this.ttfbMs >= 0)
      this.settle(brokenByTransport(transportFailure(err).message));
    else this.fail({ kind: 'bad-response', message: `answer could not be decoded (${err.message})` });
  }

  // ---- settling ----

  private fail(failure: AttemptFailure): void {
    this.settle({ type: 'failed', failure });
  }

  /**
   * Stops the attempt: a timeout, the request ending (client gone, deadline), a hedge lost, or the
   * client found gone while relaying. The result follows from the reason and the phase.
   */
  private abort(reason: Error): void {
    if (!this.settled) this.settle(this.outcomeOf(reason));
    this.stopCall(reason);
  }

  private outcomeOf(reason: Error): AttemptResult | Error {
    if (reason instanceof HedgeLostReason) return { type: 'lost' };
    if (!(reason instanceof AttemptTimeoutReason)) return reason;
    if (this.phase === 'stream' && this.ttfbMs >= 0) return brokenByTimeout(reason);
    return {
      type: 'failed',
      failure: {
        kind: 'timeout',
        phase: reason.phase === 'idle' ? 'idle' : 'first-byte',
        message: reason.message,
        limit: reason.phase,
      },
    };
  }

  /** Settles once: releases timers and listeners, and the upstream request unless it is ending well. */
  private settle(outcome: AttemptResult | Error): void {
    if (this.settled) return;
    this.settled = true;
    this.input.run.upstreamEnded();
    this.timer.clear();
    clearInterval(this.throughput);
    this.input.run.lifetime.off(this);
    if (this.waitingForDrain) this.input.run.res.removeListener('drain', this.drainListener!);
    if (outcome instanceof Error) {
      this.stopCall(outcome);
      this.reject(outcome);
      return;
    }
    if (outcome.type === 'done' && this.phase === 'stream') {
      // The answer is complete; let the upstream response end by itself, within a bound.
      this.phase = 'after';
      if (!this.complete) {
        this.call?.resume();
        this.timer.arm('idle', END_AFTER_DONE_MS);
      }
    } else {
      this.stopCall(ATTEMPT_OVER);
    }
    this.resolve(outcome);
    this.detachIfOver();
  }

  /** Aborts the upstream request if it is still running (now, or as soon as undici starts it). */
  private stopCall(reason: Error): void {
    this.timer.clear();
    if (this.complete) return;
    this.decoder?.destroy();
    if (this.call) {
      if (!this.call.aborted) this.call.abort(reason);
    } else {
      this.pendingAbort = reason;
    }
  }
}
