import { createRequire } from 'node:module';
import type * as Api from '@opentelemetry/api';
import type * as Core from '@opentelemetry/core';
import type * as Resources from '@opentelemetry/resources';
import type * as TraceBase from '@opentelemetry/sdk-trace-base';
import type * as OtlpProto from '@opentelemetry/exporter-trace-otlp-proto';
import type * as OtlpHttp from '@opentelemetry/exporter-trace-otlp-http';
import type { AttemptOutcome } from './metrics.js';

export interface TracingSettings {
  /** OTEL_EXPORTER_OTLP_ENDPOINT: spans go to `{endpoint}/v1/traces`. */
  endpoint?: string | undefined;
  /** OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: the full URL, used as it is. */
  tracesEndpoint?: string | undefined;
  /** OTEL_EXPORTER_OTLP_PROTOCOL: protobuf (default) or JSON over HTTP. */
  protocol: 'http/protobuf' | 'http/json';
  /** OTEL_SERVICE_NAME. */
  serviceName: string;
}

/** The span of one request: its attempts are children of it. */
export interface RequestSpan {
  /** A child span for an upstream attempt, and the `traceparent` header that continues it upstream. */
  attempt(endpoint: string, address: string, attempt: number): AttemptSpan;
  end(result: {
    status: number;
    errorCode: string | undefined;
    responseModel: string | undefined;
    inputTokens: number;
    outputTokens: number;
    requestId: string;
  }): void;
}

export interface AttemptSpan {
  readonly traceparent: string;
  end(outcome: AttemptOutcome): void;
}

export interface Tracing {
  /** Starts a request's span, continuing the client's `traceparent` when it sent one. */
  startRequest(
    model: string,
    headers: Readonly<Record<string, string | string[] | undefined>>,
    /** The GenAI operation: `chat` (default), `embeddings`, `text_completion`. */
    operation?: string,
  ): RequestSpan;
  /** Exports the spans ended so far now, rather than at the next batch. */
  flush(): Promise<void>;
  /** Exports what is left (graceful shutdown). */
  shutdown(): Promise<void>;
}

/**
 * Tracing with the OpenTelemetry SDK, or undefined when no OTLP endpoint is configured: then none of
 * its code is even loaded. One server span per request and one client span per upstream attempt
 * (failover, hedge and continuation attempts are siblings), with the GenAI semantic-convention
 * attributes; spans are exported in batches over OTLP/HTTP. Other OTEL_* variables (headers, timeout,
 * sampler) are read by the SDK itself.
 */
export function openTracing(settings: TracingSettings): Tracing | undefined {
  const url =
    settings.tracesEndpoint ??
    (settings.endpoint === undefined ? undefined : `${settings.endpoint.replace(/\/+$/, '')}/v1/traces`);
  if (url === undefined) return undefined;
  const load = createRequire(import.meta.url);
  const api = load('@opentelemetry/api') as typeof Api;
  const core = load('@opentelemetry/core') as typeof Core;
  const resources = load('@opentelemetry/resources') as typeof Resources;
  const base = load('@opentelemetry/sdk-trace-base') as typeof TraceBase;
  const exporter =
    settings.protocol === 'http/json'
      ? new (load('@opentelemetry/exporter-trace-otlp-http') as typeof OtlpHttp).OTLPTraceExporter({ url })
      : new (load('@opentelemetry/exporter-trace-otlp-proto') as typeof OtlpProto).OTLPTraceExporter({ url });
  const provider = new base.BasicTracerProvider({
    resource: resources.resourceFromAttributes({ 'service.name': settings.serviceName }),
    spanProcessors: [new base.BatchSpanProcessor(exporter)],
  });
  const tracer = provider.getTracer('akash-llm-gateway');
  const propagator = new core.W3CTraceContextPropagator();
  const { SpanKind, SpanStatusCode, ROOT_CONTEXT, defaultTextMapGetter } = api;

  return {
    startRequest(model, headers, operation = 'chat') {
      const parent = propagator.extract(ROOT_CONTEXT, headers, defaultTextMapGetter);
      const span = tracer.startSpan(
        `${operation} ${model}`,
        {
          kind: SpanKind.SERVER,
          attributes: { 'gen_ai.operation.name': operation, 'gen_ai.request.model': model },
        },
        parent,
      );
      const context = api.trace.setSpan(ROOT_CONTEXT, span);
      return {
        attempt(endpoint, address, attempt) {
          const child = tracer.startSpan(
            `chat ${model}`,
            {
              kind: SpanKind.CLIENT,
              attributes: {
                'gen_ai.operation.name': operation,
                'gen_ai.request.model': model,
                'server.address': address,
                'llm_gateway.endpoint': endpoint,
                'llm_gateway.attempt': attempt,
              },
            },
            context,
          );
          const { traceId, spanId, traceFlags } = child.spanContext();
          return {
            traceparent: `00-${traceId}-${spanId}-${traceFlags.toString(16).padStart(2, '0')}`,
            end(outcome) {
              child.setAttribute('llm_gateway.outcome', outcome);
              if (outcome !== 'success') {
                child.setAttribute('error.type', outcome);
                child.setStatus({ code: SpanStatusCode.ERROR, message: outcome });
              }
              child.end();
            },
          };
        },
        end(result) {
          span.setAttributes({
            'http.response.status_code': result.status,
            'gen_ai.usage.input_tokens': result.inputTokens,
            'gen_ai.usage.output_tokens': result.outputTokens,
            'llm_gateway.request.id': result.requestId,
          });
          if (result.responseModel !== undefined)
            span.setAttribute('gen_ai.response.model', result.responseModel);
          if (result.status >= 400 || result.errorCode !== undefined) {
            const type = result.errorCode ?? String(result.status);
            span.setAttribute('error.type', type);
            if (result.status >= 500 || result.errorCode !== undefined)
              span.setStatus({ code: SpanStatusCode.ERROR, message: type });
          }
          span.end();
        },
      };
    },
    flush: () => provider.forceFlush(),
    shutdown: () => provider.shutdown(),
  };
}
