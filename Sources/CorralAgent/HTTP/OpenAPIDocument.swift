/// The OpenAPI 3.1 description of the agent's HTTP API, served at
/// `/openapi.json`. Written by hand beside the routes it describes
/// (`JobRoutes`, `ServiceRoutes`, `EventStream`); `AgentOpenAPITests` runs
/// schemathesis against a live agent with it, so a route, status code or
/// field that drifts from it fails the suite.
import HTTPTypes
import Hummingbird

enum OpenAPIDocument {
    static func add<Context: RequestContext>(to router: Router<Context>) {
        router.get("openapi.json") { _, _ in
            var headers = HTTPFields()
            headers[.contentType] = "application/json"
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: json + "\n")))
        }
    }

    static let json = #"""
{
  "openapi": "3.1.0",
  "info": {
    "title": "corral agent",
    "version": "1",
    "description": "The HTTP API of `corral agent`: submit jobs, follow their output and read their results. Every job ends by its deadline plus a bounded grace. See docs/agent.md."
  },
  "servers": [{"url": "/"}],
  "security": [{}, {"bearer": []}],
  "paths": {
    "/v1/jobs": {
      "post": {
        "operationId": "submitJob",
        "summary": "Submit a job",
        "parameters": [
          {"name": "Idempotency-Key", "in": "header", "required": false,
           "schema": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[ -~]+$"},
           "description": "1 to 200 printable ASCII characters. The same key with the same spec answers 200 with the job it made (never a second run); with another spec, 409."}
        ],
        "requestBody": {
          "required": true,
          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/JobSpec"}}}
        },
        "responses": {
          "201": {"description": "Accepted", "headers": {"Location": {"$ref": "#/components/headers/Location"}},
                  "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Job"}}}},
          "200": {"description": "The job an earlier request with the same Idempotency-Key made",
                  "headers": {"Location": {"$ref": "#/components/headers/Location"}},
                  "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Job"}}}},
          "400": {"$ref": "#/components/responses/Error"},
          "401": {"$ref": "#/components/responses/Error"},
          "403": {"$ref": "#/components/responses/Error"},
          "409": {"$ref": "#/components/responses/Error"},
          "413": {"$ref": "#/components/responses/Error"},
          "415": {"$ref": "#/components/responses/Error"},
          "429": {"$ref": "#/components/responses/Error"},
          "503": {"$ref": "#/components/responses/Error"}
        }
      },
      "get": {
        "operationId": "listJobs",
        "summary": "Jobs, newest first",
        "parameters": [
          {"name": "state", "in": "query", "required": false, "schema": {"type": "string"},
           "description": "Comma-separated states (queued, running, exited, signaled, timed_out, cancelled, failed_to_start, lost), final (every final state), or failed (exited with a code other than 0, signaled, failed_to_start); a job matching any of them is listed."},
          {"name": "q", "in": "query", "required": false, "schema": {"type": "string", "maxLength": 200},
           "description": "Text the command or the name contains (ASCII letters compared without case); at most 200 characters."},
          {"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50}},
          {"name": "after", "in": "query", "required": false, "schema": {"type": "string", "pattern": "^j[0-9]{1,18}$"},
           "description": "Cursor: jobs older than this id only; the `next` of the previous page."},
          {"name": "since", "in": "query", "required": false, "schema": {"type": "string", "pattern": "^j[0-9]{1,18}$"},
           "description": "Jobs from this id up (newer or equal) only: re-reads exactly the window a client shows."}
        ],
        "responses": {
          "200": {"description": "A page of jobs",
                  "content": {"application/json": {"schema": {"$ref": "#/components/schemas/JobList"}}}},
          "400": {"$ref": "#/components/responses/Error"},
          "401": {"$ref": "#/components/responses/Error"},
          "503": {"$ref": "#/components/responses/Error"}
        }
      }
    },
    "/v1/jobs/{id}": {
      "parameters": [{"$ref": "#/components/parameters/JobID"}],
      "get": {
        "operationId": "getJob",
        "summary": "A job, with its result once final",
        "responses": {
          "200": {"description": "The job", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Job"}}}},
          "401": {"$ref": "#/components/responses/Error"},
          "404": {"$ref": "#/components/responses/Error"},
          "503": {"$ref": "#/components/responses/Error"}
        }
      },
      "delete": {
        "operationId": "cancelJob",
        "summary": "Cancel a job: the stop sequence on its whole group, or out of the queue",
        "responses": {
          "202": {"description": "Cancelling", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Job"}}}},
          "401": {"$ref": "#/components/responses/Error"},
          "404": {"$ref": "#/components/responses/Error"},
          "409": {"$ref": "#/components/responses/Error"},
          "503": {"$ref": "#/components/responses/Error"}
        }
      }
    },
    "/v1/jobs/{id}/output": {
      "parameters": [{"$ref": "#/components/parameters/JobID"}],
      "get": {
        "operationId": "getJobOutput",
        "summary": "The output kept so far",
        "parameters": [
          {"name": "stream", "in": "query", "required": false,
           "schema": {"type": "string", "enum": ["stdout", "stderr", "combined"], "default": "combined"}},
          {"name": "download", "in": "query", "required": false, "schema": {"type": "string", "enum": ["0", "1"], "default": "0"},
           "description": "1: the same bytes as application/octet-stream with Content-Disposition: attachment."}
        ],
        "responses": {
          "200": {"description": "The bytes kept so far, committed and not yet committed; for a final job that dropped bytes, then a line `… N bytes of STREAM dropped …` and the kept tail.",
                  "headers": {"X-Corral-Job-State": {"schema": {"$ref": "#/components/schemas/JobState"}},
                              "X-Corral-Dropped-Bytes": {"schema": {"type": "string", "pattern": "^[0-9]+$"},
                                                         "description": "Bytes dropped where the marker lines are (0: none)."}},
                  "content": {"text/plain": {"schema": {"type": "string"}},
                              "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
          "400": {"$ref": "#/components/responses/Error"},
          "401": {"$ref": "#/components/responses/Error"},
          "404": {"$ref": "#/components/responses/Error"},
          "503": {"$ref": "#/components/responses/Error"}
        }
      }
    },
    "/v1/jobs/{id}/events": {
      "parameters": [{"$ref": "#/components/parameters/JobID"}],
      "get": {
        "operationId": "followJob",
        "summary": "Server-Sent Events: output, state, then one result and the end of the stream",
        "parameters": [
          {"name": "Last-Event-ID", "in": "header", "required": false, "schema": {"type": "string"}},
          {"name": "last_event_id", "in": "query", "required": false, "schema": {"type": "string"}}
        ],
        "responses": {
          "200": {"description": "The event stream", "content": {"text/event-stream": {"schema": {"type": "string"}}}},
          "400": {"$ref": "#/components/responses/Error"},
          "401": {"$ref": "#/components/responses/Error"},
          "404": {"$ref": "#/components/responses/Error"},
          "503": {"$ref": "#/components/responses/Error"}
        }
      }
    },
    "/healthz": {
      "get": {
        "operationId": "health",
        "summary": "Health; no token needed",
        "security": [{}],
        "responses": {
          "200": {"description": "Taking jobs", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}},
          "503": {"description": "Degraded (the journal cannot be written), draining or shutting down",
                  "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}}
        }
      }
    },
    "/metrics": {
      "get": {
        "operationId": "metrics",
        "summary": "Prometheus text exposition",
        "responses": {
          "200": {"description": "Metrics", "content": {"text/plain": {"schema": {"type": "string"}}}},
          "401": {"$ref": "#/components/responses/Error"}
        }
      }
    },
    "/openapi.json": {
      "get": {
        "operationId": "openAPI",
        "summary": "This document; no token needed",
        "security": [{}],
        "responses": {
          "200": {"description": "The OpenAPI document", "content": {"application/json": {"schema": {"type": "object"}}}}
        }
      }
    }
  },
  "components": {
    "securitySchemes": {
      "bearer": {"type": "http", "scheme": "bearer", "description": "Required when the agent was started with --token-file."}
    },
    "headers": {
      "Location": {"schema": {"type": "string", "pattern": "^/v1/jobs/j[0-9]+$"}}
    },
    "parameters": {
      "JobID": {"name": "id", "in": "path", "required": true, "schema": {"type": "string"}, "description": "A job id like j42."}
    },
    "responses": {
      "Error": {"description": "An error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    },
    "schemas": {
      "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
          "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
              "code": {"type": "string"},
              "message": {"type": "string"},
              "field": {"type": "string", "description": "The spec field or query parameter at fault, in the API's own names (argv[1], cwd, env)."}
            }
          }
        }
      },
      "Duration": {
        "description": "A duration like 500ms, 30s, 5m, 1h30m or 7d, or a number of seconds; at most 3650 days.",
        "oneOf": [
          {"type": "string"},
          {"type": "number", "minimum": 0, "maximum": 315360000},
          {"type": "null"}
        ]
      },
      "Size": {
        "description": "A byte count like 64KiB or 1MiB, or a number of bytes; at most 1 TiB.",
        "oneOf": [
          {"type": "string"},
          {"type": "integer", "minimum": 0, "maximum": 1099511627776},
          {"type": "null"}
        ]
      },
      "Identity": {
        "description": "A user or group name, or a number (not -1, which setuid reads as 'unchanged').",
        "oneOf": [
          {"type": "string", "minLength": 1},
          {"type": "integer", "minimum": 0, "maximum": 4294967294},
          {"type": "null"}
        ]
      },
      "Flag": {"type": ["boolean", "null"]},
      "JobSpec": {
        "type": "object",
        "description": "The spec `corral batch` reads. Exactly one of argv and shell. Every other field may be null, which is the field left out. Duplicate keys, invalid UTF-8 and unknown fields are refused.",
        "additionalProperties": false,
        "oneOf": [{"required": ["argv"]}, {"required": ["shell"]}],
        "properties": {
          "id": {"oneOf": [{"type": "string", "maxLength": 1024}, {"type": "integer", "minimum": -9223372036854775808, "maximum": 9223372036854775807}, {"type": "null"}],
                 "description": "Becomes the job's name; the agent assigns the id."},
          "argv": {"type": "array", "minItems": 1, "items": {"type": "string"}},
          "shell": {"type": "string", "description": "Run by /bin/sh -c."},
          "env": {"type": ["object", "null"], "additionalProperties": {"type": "string"}},
          "unset_env": {"type": ["array", "null"], "items": {"type": "string"}},
          "clear_env": {"$ref": "#/components/schemas/Flag"},
          "cwd": {"type": ["string", "null"]},
          "stdin": {"type": ["string", "null"]},
          "timeout": {"$ref": "#/components/schemas/Duration", "description": "More than 0; the agent's --default-timeout when left out."},
          "signal": {"oneOf": [{"type": "string"}, {"type": "integer", "minimum": 1, "maximum": 64}, {"type": "null"}],
                     "description": "The stop signal: TERM, SIGTERM, term or 15."},
          "kill_after": {"$ref": "#/components/schemas/Duration"},
          "drain": {"$ref": "#/components/schemas/Duration"},
          "max_output": {"$ref": "#/components/schemas/Size"},
          "combine_output": {"$ref": "#/components/schemas/Flag"},
          "leave_running": {"$ref": "#/components/schemas/Flag"},
          "user": {"$ref": "#/components/schemas/Identity"},
          "group": {"$ref": "#/components/schemas/Identity"}
        }
      },
      "JobState": {
        "type": "string",
        "enum": ["queued", "running", "exited", "signaled", "timed_out", "cancelled", "failed_to_start", "lost"]
      },
      "Job": {
        "type": "object",
        "required": ["id", "command", "state", "final", "submitted_at"],
        "properties": {
          "id": {"type": "string", "pattern": "^j[0-9]+$"},
          "name": {"type": ["string", "null"]},
          "command": {"type": "string"},
          "state": {"$ref": "#/components/schemas/JobState"},
          "final": {"type": "boolean"},
          "submitted_at": {"type": "string", "format": "date-time"},
          "started_at": {"type": ["string", "null"], "format": "date-time"},
          "finished_at": {"type": ["string", "null"], "format": "date-time"},
          "pid": {"type": ["integer", "null"]},
          "exit_code": {"type": ["integer", "null"]},
          "signal": {"type": ["string", "null"]},
          "duration_s": {"type": ["number", "null"]},
          "message": {"type": ["string", "null"], "description": "Why it failed to start or was lost, or who cancelled it (a client, the agent's shutdown or drain)."},
          "timeout_s": {"type": ["number", "null"], "description": "The deadline it was given, seconds."},
          "live_output_limit": {"type": "integer", "minimum": 0, "description": "Only in GET /v1/jobs/{id} of a job not yet final: the bytes per stream its live output keeps (max_output); what it writes beyond shows in the result's tail."},
          "spec": {"type": "object", "description": "Only in GET /v1/jobs/{id}, the submit answer and the result event: the spec as submitted (to re-run it)."},
          "result": {
            "description": "Once final: the result object of `corral batch` (docs/result.md), output included.",
            "oneOf": [{"type": "null"}, {"type": "object", "required": ["outcome"], "properties": {"outcome": {"type": "string"}}}]
          }
        }
      },
      "JobList": {
        "type": "object",
        "required": ["jobs", "running", "queued"],
        "properties": {
          "jobs": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}},
          "next": {"type": ["string", "null"]},
          "running": {"type": "integer", "minimum": 0},
          "queued": {"type": "integer", "minimum": 0}
        }
      },
      "Health": {
        "type": "object",
        "required": ["status"],
        "properties": {
          "status": {"type": "string", "enum": ["ok", "degraded", "draining", "shutting_down"]},
          "reason": {"type": "string"},
          "running": {"type": "integer", "minimum": 0},
          "queued": {"type": "integer", "minimum": 0}
        }
      }
    }
  }
}
"""#
}
