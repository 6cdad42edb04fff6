/// The OpenAPI 3.1 document served at `/openapi.json`. Generated from
/// `fixtures/openapi/kafka-sidecar.json` by `ci/gen-openapi` (a test keeps them equal).
enum KafkaSidecarOpenAPI {
    static let document = #"""
{
  "openapi": "3.1.0",
  "info": {
    "title": "Light Mesh Kafka sidecar",
    "version": "1.0.0",
    "description": "Kafka over REST on localhost. Produce in three request shapes (light-mesh, Confluent REST v2, Strimzi bridge extras) on one idempotent producer. The reactive consumer pushes records to the app (see the PushRequest and PushAnswer schemas) and commits per partition only up to the lowest record not yet finished (SUCCESS, DROP, or its dead-letter copy acknowledged). Inbound traceparent is continued into a new span in each record's headers and X-Correlation-Id is carried; Authorization, Cookie and Set-Cookie are never copied into records. Bounds: a whole request (head and body) must arrive within the request timeout (30 s; else 408), at most max_connections (256) are open at once, bodies above max_body_bytes get 413; Expect: 100-continue is answered. Produce bodies are read strictly: unknown or repeated fields, an empty records list, a partition in both path and body, header names with control characters and a reserved header given twice are 422; internal topics (__*) are 403; an unsupported Content-Type is 415 (error_code 415). JSON keys and values are stored as the bytes sent. Authentication: none by default (the port is meant for loopback); with rest.jwt (or --jwks-file) every request needs a valid Authorization: Bearer token (401 error_code 40101, refused before the body is read; a missing scope 403 error_code 40301). Pull consumers (Confluent REST v2 paths, Strimzi bridge differences by api_flavour): an instance lives in the sidecar process that made it (the app talks to its own pod's sidecar); a commit never passes a record the instance returned (409 error_code 40903); Confluent stores offset+1 and answers 200 [], Strimzi stores the offset as given and answers 204; an empty commit body commits everything returned so far; error_code is five-digit for Confluent instances and the HTTP status for Strimzi ones. Dead letters: GET /deadletters/{topic} shows those not yet replayed; POST /deadletters/{topic}/replay copies them back at-least-once (see the path)."
  },
  "servers": [
    {
      "url": "http://127.0.0.1:9082"
    }
  ],
  "paths": {
    "/producers/{topic}": {
      "post": {
        "summary": "Produce records (light-mesh shape)",
        "parameters": [
          {
            "$ref": "#/components/parameters/topic"
          },
          {
            "$ref": "#/components/parameters/traceparent"
          },
          {
            "$ref": "#/components/parameters/correlationId"
          }
        ],
        "requestBody": {
          "required": true,
          "content": {
            "application/json": {
              "schema": {
                "$ref": "#/components/schemas/LightMeshProduceRequest"
              }
            }
          }
        },
        "responses": {
          "200": {
            "description": "Every record was stored",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/LightMeshProduceAnswer"
                }
              }
            }
          },
          "207": {
            "description": "Some records were stored; each result says which",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/LightMeshProduceAnswer"
                }
              }
            }
          },
          "400": {
            "$ref": "#/components/responses/Error"
          },
          "404": {
            "description": "The topic does not exist",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/LightMeshProduceAnswer"
                }
              }
            }
          },
          "413": {
            "$ref": "#/components/responses/Error"
          },
          "415": {
            "$ref": "#/components/responses/Error"
          },
          "422": {
            "$ref": "#/components/responses/Error"
          },
          "500": {
            "description": "No record was stored",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/LightMeshProduceAnswer"
                }
              }
            }
          },
          "503": {
            "description": "No record was stored and all may be retried",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/LightMeshProduceAnswer"
                }
              }
            }
          }
        }
      }
    },
    "/topics/{topic}": {
      "post": {
        "summary": "Produce records (Confluent REST v2; Strimzi headers and timestamp accepted)",
        "parameters": [
          {
            "$ref": "#/components/parameters/topic"
          },
          {
            "$ref": "#/components/parameters/async"
          },
          {
            "$ref": "#/components/parameters/traceparent"
          },
          {
            "$ref": "#/components/parameters/correlationId"
          }
        ],
        "requestBody": {
          "$ref": "#/components/requestBodies/ConfluentProduce"
        },
        "responses": {
          "200": {
            "description": "One offset entry per record, in request order; failed records carry error_code 50002 (Kafka error) or 50003 (retriable)",
            "content": {
              "application/vnd.kafka.v2+json": {
                "schema": {
                  "$ref": "#/components/schemas/ConfluentProduceAnswer"
                }
              }
            }
          },
          "204": {
            "description": "Queued (async=true)"
          },
          "400": {
            "$ref": "#/components/responses/ConfluentError"
          },
          "404": {
            "$ref": "#/components/responses/ConfluentError"
          },
          "413": {
            "$ref": "#/components/responses/ConfluentError"
          },
          "415": {
            "$ref": "#/components/responses/ConfluentError"
          },
          "422": {
            "$ref": "#/components/responses/ConfluentError"
          },
          "401": {
            "$ref": "#/components/responses/ConfluentError"
          },
          "403": {
            "$ref": "#/components/responses/ConfluentError"
          }
        }
      },
      "get": {
        "summary": "One topic and its partitions",
        "parameters": [
          {
            "$ref": "#/components/parameters/topic"
          }
        ],
        "responses": {
          "200": {
            "description": "The topic",
            "content": {
              "application/vnd.kafka.v2+json": {
                "schema": {
                  "type": "object",
                  "properties": {
                    "name": {
                      "type": "string"
                    },
                    "configs": {
                      "type": "object"
                    },
                    "partitions": {
                      "type": "array",
                      "items": {
                        "type": "object",
                        "properties": {
                          "partition": {
                            "type": "integer"
                          }
                        },
                        "description": "Leaders and replicas are not reported"
                      }
                    }
                  }
                }
              }
            }
          },
          "404": {
            "$ref": "#/components/responses/ConfluentError"
          },
          "504": {
            "$ref": "#/components/responses/ConfluentError"
          }
        }
      }
    },
    "/topics/{topic}/partitions/{partition}": {
      "post": {
        "summary": "Produce records to one partition (Confluent REST v2)",
        "parameters": [
          {
            "$ref": "#/components/parameters/topic"
          },
          {
            "name": "partition",
            "in": "path",
            "required": true,
            "schema": {
              "type": "integer",
              "minimum": 0
            }
          },
          {
            "$ref": "#/components/parameters/async"
          },
          {
            "$ref": "#/components/parameters/traceparent"
          },
          {
            "$ref": "#/components/parameters/correlationId"
          }
        ],
        "requestBody": {
          "$ref": "#/components/requestBodies/ConfluentProduce"
        },
        "responses": {
          "200": {
            "description": "One offset entry per record, in request order; failed records carry error_code 50002 (Kafka error) or 50003 (retriable)",
            "content": {
              "application/vnd.kafka.v2+json": {
                "schema": {
                  "$ref": "#/components/schemas/ConfluentProduceAnswer"
                }
              }
            }
          },
          "204": {
            "description": "Queued (async=true)"
          },
          "400": {
            "$ref": "#/components/responses/ConfluentError"
          },
          "404": {
            "$ref": "#/components/responses/ConfluentError"
          },
          "413": {
            "$ref": "#/components/responses/ConfluentError"
          },
          "415": {
            "$ref": "#/components/responses/ConfluentError"
          },
          "422": {
            "$ref": "#/components/responses/ConfluentError"
          },
          "401": {
            "$ref": "#/components/responses/ConfluentError"
          },
          "403": {
            "$ref": "#/components/responses/ConfluentError"
          }
        }
      },
      "get": {
        "summary": "One partition",
        "parameters": [
          {
            "$ref": "#/components/parameters/topic"
          },
          {
            "name": "partition",
            "in": "path",
            "required": true,
            "schema": {
              "type": "integer",
              "minimum": 0
            }
          }
        ],
        "responses": {
          "200": {
            "description": "The partition",
            "content": {
              "application/vnd.kafka.v2+json": {
                "schema": {
                  "type": "object",
                  "properties": {
                    "partition": {
                      "type": "integer"
                    }
                  },
                  "description": "Leaders and replicas are not reported"
                }
              }
            }
          },
          "404": {
            "$ref": "#/components/responses/ConfluentError"
          },
          "504": {
            "$ref": "#/components/responses/ConfluentError"
          }
        }
      }
    },
    "/openapi.json": {
      "get": {
        "summary": "This document",
        "responses": {
          "200": {
            "description": "OpenAPI 3.1",
            "content": {
              "application/json": {}
            }
          },
          "401": {
            "$ref": "#/components/responses/ConfluentError"
          }
        }
      }
    },
    "/consumers/{group}": {
      "post": {
        "summary": "Create a pull consumer instance in the group",
        "parameters": [
          {
            "$ref": "#/components/parameters/group"
          }
        ],
        "requestBody": {
          "required": false,
          "content": {
            "application/vnd.kafka.v2+json": {
              "schema": {
                "$ref": "#/components/schemas/ConsumerCreate"
              }
            }
          }
        },
        "responses": {
          "200": {
            "description": "The instance and its base URI",
            "content": {
              "application/vnd.kafka.v2+json": {
                "schema": {
                  "$ref": "#/components/schemas/ConsumerCreated"
                }
              }
            }
          },
          "400": {
            "$ref": "#/components/responses/ConfluentError"
          },
          "409": {
            "$ref": "#/components/responses/ConfluentError"
          },
          "422": {
            "$ref": "#/components/responses/ConfluentError"
          },
          "429": {
            "$ref": "#/components/responses/ConfluentError"
          },
          "500": {
            "$ref": "#/components/responses/ConfluentError"
          }
        }
      }
    },
    "/consumers/{group}/instances/{name}": {
      "delete": {
        "summary": "Close the instance (it commits what auto commit counts and leaves the group)",
        "parameters": [
          {
            "$ref": "#/components/parameters/group"
          },
          {
            "$ref": "#/components/parameters/instance"
          }
        ],
        "responses": {
          "204": {
            "description": "Closed"
          },
          "404": {
            "$ref": "#/components/responses/ConfluentError"
          }
        }
      }
    },
    "/consumers/{group}/instances/{name}/subscription": {
      "post": {
        "summary": "Subscribe to topics",
        "parameters": [
          {
            "$ref": "#/components/parameters/group"
          },
          {
            "$ref": "#/components/parameters/instance"
          }
        ],
        "requestBody": {
          "required": true,
          "content": {
            "application/vnd.kafka.v2+json": {
              "schema": {
                "$ref": "#/components/schemas/Subscription"
              }
            }
          }
        },
        "responses": {
          "204": {
            "description": "Subscribed"
          },
          "400": {
            "$ref": "#/components/responses/ConfluentError"
          },
          "404": {
            "$ref": "#/components/responses/ConfluentError"
          },
          "409": {
            "$ref": "#/components/responses/ConfluentError"
          },
          "422": {
            "$ref": "#/components/responses/ConfluentError"
          }
        }
      },
      "get": {
        "summary": "The topics subscribed to (Strimzi adds the assigned partitions)",
        "parameters": [
          {
            "$ref": "#/components/parameters/group"
          },
          {
            "$ref": "#/components/parameters/instance"
          }
        ],
        "responses": {
          "200": {
            "description": "Topics",
            "content": {
              "application/vnd.kafka.v2+json": {
                "schema": {
                  "$ref": "#/components/schemas/Subscription"
                }
              }
            }
          },
          "404": {
            "$ref": "#/components/responses/ConfluentError"
          }
        }
      },
      "delete": {
        "summary": "Give up the subscription",
        "parameters": [
          {
            "$ref": "#/components/parameters/group"
          },
          {
            "$ref": "#/components/parameters/instance"
          }
        ],
        "responses": {
          "204": {
            "description": "Unsubscribed"
          },
          "404": {
            "$ref": "#/components/responses/ConfluentError"
          }
        }
      }
    },
    "/consumers/{group}/instances/{name}/assignments": {
      "post": {
        "summary": "Assign partitions by hand (exclusive with a subscription)",
        "parameters": [
          {
            "$ref": "#/components/parameters/group"
          },
          {
            "$ref": "#/components/parameters/instance"
          }
        ],
        "requestBody": {
          "required": true,
          "content": {
            "application/vnd.kafka.v2+json": {
              "schema": {
                "$ref": "#/components/schemas/Partitions"
              }
            }
          }
        },
        "responses": {
          "204": {
            "description": "Assigned"
          },
          "400": {
            "$ref": "#/components/responses/ConfluentError"
          },
          "404": {
            "$ref": "#/components/responses/ConfluentError"
          },
          "409": {
            "$ref": "#/components/responses/ConfluentError"
          },
          "422": {
            "$ref": "#/components/responses/ConfluentError"
          }
        }
      },
      "get": {
        "summary": "The partitions assigned",
        "parameters": [
          {
            "$ref": "#/components/parameters/group"
          },
          {
            "$ref": "#/components/parameters/instance"
          }
        ],
        "responses": {
          "200": {
            "description": "Partitions",
            "content": {
              "application/vnd.kafka.v2+json": {
                "schema": {
                  "$ref": "#/components/schemas/Partitions"
                }
              }
            }
          },
          "404": {
            "$ref": "#/components/responses/ConfluentError"
          }
        }
      }
    },
    "/consumers/{group}/instances/{name}/records": {
      "get": {
        "summary": "Fetch records, waiting up to timeout for some",
        "parameters": [
          {
            "$ref": "#/components/parameters/group"
          },
          {
            "$ref": "#/components/parameters/instance"
          },
          {
            "name": "timeout",
            "in": "query",
            "schema": {
              "type": "integer",
              "minimum": -1
            },
            "description": "Milliseconds to wait (-1 or none: consumer.request.timeout.ms, 1 s; at most consumers.max_fetch_timeout)"
          },
          {
            "name": "max_bytes",
            "in": "query",
            "schema": {
              "type": "integer",
              "minimum": -1
            },
            "description": "Truncates the answer (keys and values); a single larger record still goes alone"
          },
          {
            "name": "Accept",
            "in": "header",
            "schema": {
              "type": "string",
              "enum": [
                "application/vnd.kafka.binary.v2+json",
                "application/vnd.kafka.json.v2+json",
                "application/vnd.kafka.text.v2+json"
              ]
            },
            "description": "Must match the instance's format (Confluent: none, */* and vnd.kafka.v2+json mean binary)"
          }
        ],
        "responses": {
          "200": {
            "description": "Records in offset order per partition (possibly none)",
            "content": {
              "application/vnd.kafka.binary.v2+json": {
                "schema": {
                  "type": "array",
                  "items": {
                    "$ref": "#/components/schemas/ConsumedRecord"
                  }
                }
              },
              "application/vnd.kafka.json.v2+json": {
                "schema": {
                  "type": "array",
                  "items": {
                    "$ref": "#/components/schemas/ConsumedRecord"
                  }
                }
              },
              "application/vnd.kafka.text.v2+json": {
                "schema": {
                  "type": "array",
                  "items": {
                    "$ref": "#/components/schemas/ConsumedRecord"
                  }
                }
              }
            }
          },
          "404": {
            "$ref": "#/components/responses/ConfluentError"
          },
          "406": {
            "$ref": "#/components/responses/ConfluentError"
          },
          "409": {
            "$ref": "#/components/responses/ConfluentError"
          },
          "422": {
            "$ref": "#/components/responses/ConfluentError"
          }
        }
      }
    },
    "/consumers/{group}/instances/{name}/offsets": {
      "post": {
        "summary": "Commit offsets (an empty body: everything returned so far)",
        "parameters": [
          {
            "$ref": "#/components/parameters/group"
          },
          {
            "$ref": "#/components/parameters/instance"
          }
        ],
        "requestBody": {
          "required": false,
          "content": {
            "application/vnd.kafka.v2+json": {
              "schema": {
                "$ref": "#/components/schemas/Offsets"
              }
            }
          }
        },
        "responses": {
          "200": {
            "description": "Committed (Confluent: offset+1 stored); body []",
            "content": {
              "application/vnd.kafka.v2+json": {
                "schema": {
                  "type": "array",
                  "maxItems": 0
                }
              }
            }
          },
          "204": {
            "description": "Committed (Strimzi: stored as given)"
          },
          "404": {
            "$ref": "#/components/responses/ConfluentError"
          },
          "409": {
            "$ref": "#/components/responses/ConfluentError"
          },
          "422": {
            "$ref": "#/components/responses/ConfluentError"
          },
          "500": {
            "$ref": "#/components/responses/ConfluentError"
          }
        }
      },
      "get": {
        "summary": "Committed offsets (of the partitions named in a body, or every assigned one)",
        "parameters": [
          {
            "$ref": "#/components/parameters/group"
          },
          {
            "$ref": "#/components/parameters/instance"
          }
        ],
        "responses": {
          "200": {
            "description": "Committed offsets (the next offset to read)",
            "content": {
              "application/vnd.kafka.v2+json": {
                "schema": {
                  "$ref": "#/components/schemas/Offsets"
                }
              }
            }
          },
          "404": {
            "$ref": "#/components/responses/ConfluentError"
          },
          "500": {
            "$ref": "#/components/responses/ConfluentError"
          }
        }
      }
    },
    "/consumers/{group}/instances/{name}/positions": {
      "post": {
        "summary": "Seek to offsets (all or nothing)",
        "parameters": [
          {
            "$ref": "#/components/parameters/group"
          },
          {
            "$ref": "#/components/parameters/instance"
          }
        ],
        "requestBody": {
          "required": true,
          "content": {
            "application/vnd.kafka.v2+json": {
              "schema": {
                "$ref": "#/components/schemas/Offsets"
              }
            }
          }
        },
        "responses": {
          "204": {
            "description": "Moved"
          },
          "404": {
            "$ref": "#/components/responses/ConfluentError"
          },
          "409": {
            "$ref": "#/components/responses/ConfluentError"
          },
          "422": {
            "$ref": "#/components/responses/ConfluentError"
          }
        }
      }
    },
    "/consumers/{group}/instances/{name}/positions/beginning": {
      "post": {
        "summary": "Seek to the beginning (all or nothing)",
        "parameters": [
          {
            "$ref": "#/components/parameters/group"
          },
          {
            "$ref": "#/components/parameters/instance"
          }
        ],
        "requestBody": {
          "required": true,
          "content": {
            "application/vnd.kafka.v2+json": {
              "schema": {
                "$ref": "#/components/schemas/Partitions"
              }
            }
          }
        },
        "responses": {
          "204": {
            "description": "Moved"
          },
          "404": {
            "$ref": "#/components/responses/ConfluentError"
          },
          "409": {
            "$ref": "#/components/responses/ConfluentError"
          },
          "422": {
            "$ref": "#/components/responses/ConfluentError"
          }
        }
      }
    },
    "/consumers/{group}/instances/{name}/positions/end": {
      "post": {
        "summary": "Seek to the end (all or nothing)",
        "parameters": [
          {
            "$ref": "#/components/parameters/group"
          },
          {
            "$ref": "#/components/parameters/instance"
          }
        ],
        "requestBody": {
          "required": true,
          "content": {
            "application/vnd.kafka.v2+json": {
              "schema": {
                "$ref": "#/components/schemas/Partitions"
              }
            }
          }
        },
        "responses": {
          "204": {
            "description": "Moved"
          },
          "404": {
            "$ref": "#/components/responses/ConfluentError"
          },
          "409": {
            "$ref": "#/components/responses/ConfluentError"
          },
          "422": {
            "$ref": "#/components/responses/ConfluentError"
          }
        }
      }
    },
    "/": {
      "get": {
        "summary": "The sidecar's version (Strimzi's shape)",
        "responses": {
          "200": {
            "description": "Version",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object",
                  "properties": {
                    "bridge_version": {
                      "type": "string"
                    }
                  }
                }
              }
            }
          }
        }
      }
    },
    "/healthy": {
      "get": {
        "summary": "Liveness on the REST port (Strimzi's probe)",
        "responses": {
          "200": {
            "description": "Alive (empty body)"
          }
        }
      }
    },
    "/ready": {
      "get": {
        "summary": "Readiness on the REST port (Strimzi's probe): brokers answer and every subscription's app is ready",
        "responses": {
          "200": {
            "description": "Ready (empty body)"
          },
          "500": {
            "description": "Not ready (empty body)"
          }
        }
      }
    },
    "/openapi": {
      "get": {
        "summary": "This document (as /openapi.json)",
        "responses": {
          "200": {
            "description": "The OpenAPI document",
            "content": {
              "application/json": {}
            }
          }
        }
      }
    },
    "/topics": {
      "get": {
        "summary": "Topic names (internal __* topics left out)",
        "responses": {
          "200": {
            "description": "Names",
            "content": {
              "application/vnd.kafka.v2+json": {
                "schema": {
                  "type": "array",
                  "items": {
                    "type": "string"
                  }
                }
              }
            }
          },
          "504": {
            "$ref": "#/components/responses/ConfluentError"
          }
        }
      }
    },
    "/topics/{topic}/partitions": {
      "get": {
        "summary": "A topic's partitions",
        "parameters": [
          {
            "$ref": "#/components/parameters/topic"
          }
        ],
        "responses": {
          "200": {
            "description": "Partitions",
            "content": {
              "application/vnd.kafka.v2+json": {
                "schema": {
                  "type": "array",
                  "items": {
                    "type": "object",
                    "properties": {
                      "partition": {
                        "type": "integer"
                      }
                    },
                    "description": "Leaders and replicas are not reported"
                  }
                }
              }
            }
          },
          "404": {
            "$ref": "#/components/responses/ConfluentError"
          },
          "504": {
            "$ref": "#/components/responses/ConfluentError"
          }
        }
      }
    },
    "/topics/{topic}/partitions/{partition}/offsets": {
      "get": {
        "summary": "A partition's first and next offsets",
        "parameters": [
          {
            "$ref": "#/components/parameters/topic"
          },
          {
            "name": "partition",
            "in": "path",
            "required": true,
            "schema": {
              "type": "integer",
              "minimum": 0
            }
          }
        ],
        "responses": {
          "200": {
            "description": "Offsets",
            "content": {
              "application/vnd.kafka.v2+json": {
                "schema": {
                  "type": "object",
                  "properties": {
                    "beginning_offset": {
                      "type": "integer"
                    },
                    "end_offset": {
                      "type": "integer"
                    }
                  }
                }
              }
            }
          },
          "404": {
            "$ref": "#/components/responses/ConfluentError"
          },
          "504": {
            "$ref": "#/components/responses/ConfluentError"
          }
        }
      }
    },
    "/consumers/{group}/lag": {
      "get": {
        "summary": "A group's lag: per partition it committed, the end offset minus the committed one",
        "parameters": [
          {
            "$ref": "#/components/parameters/group"
          }
        ],
        "responses": {
          "200": {
            "description": "Lag",
            "content": {
              "application/vnd.kafka.v2+json": {
                "schema": {
                  "type": "object",
                  "properties": {
                    "group": {
                      "type": "string"
                    },
                    "partitions": {
                      "type": "array",
                      "items": {
                        "type": "object",
                        "properties": {
                          "topic": {
                            "type": "string"
                          },
                          "partition": {
                            "type": "integer"
                          },
                          "committed": {
                            "type": "integer"
                          },
                          "end": {
                            "type": "integer"
                          },
                          "lag": {
                            "type": "integer"
                          }
                        }
                      }
                    }
                  }
                }
              }
            }
          },
          "422": {
            "$ref": "#/components/responses/ConfluentError"
          },
          "504": {
            "$ref": "#/components/responses/ConfluentError"
          }
        }
      }
    },
    "/deadletters/{topic}": {
      "get": {
        "summary": "The dead letters of a topic not yet replayed (from the replay group's committed offsets on), oldest first, with why each is there. Commits nothing.",
        "parameters": [
          {
            "name": "topic",
            "in": "path",
            "required": true,
            "description": "The original topic; its dead-letter topic is deadletters.topic ('{topic}.dlq'), or the dead_letter_topic of a subscription that reads it",
            "schema": {
              "type": "string"
            }
          },
          {
            "name": "limit",
            "in": "query",
            "schema": {
              "type": "integer",
              "minimum": 1,
              "maximum": 1000,
              "default": 100
            }
          },
          {
            "name": "group",
            "in": "query",
            "description": "Replay group (default lightmesh-replay.{topic})",
            "schema": {
              "type": "string"
            }
          }
        ],
        "responses": {
          "200": {
            "description": "Pending dead letters",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object",
                  "properties": {
                    "topic": {
                      "type": "string"
                    },
                    "dead_letter_topic": {
                      "type": "string"
                    },
                    "group": {
                      "type": "string"
                    },
                    "pending": {
                      "type": "integer",
                      "description": "Records between the group's committed offsets and the ends"
                    },
                    "partitions": {
                      "type": "array",
                      "items": {
                        "type": "object",
                        "properties": {
                          "partition": {
                            "type": "integer"
                          },
                          "from": {
                            "type": "integer",
                            "description": "Where the job started: the replay group's committed offset, or the first offset kept"
                          },
                          "to": {
                            "type": "integer",
                            "description": "Replay only: what the replay group has committed now"
                          },
                          "end": {
                            "type": "integer",
                            "description": "Where it was to stop: the partition's end when the job started, or until_offset"
                          }
                        }
                      }
                    },
                    "records": {
                      "type": "array",
                      "items": {
                        "$ref": "#/components/schemas/DeadLetterRecord"
                      }
                    }
                  }
                }
              }
            }
          },
          "403": {
            "$ref": "#/components/responses/ConfluentError"
          },
          "404": {
            "$ref": "#/components/responses/ConfluentError"
          },
          "405": {
            "$ref": "#/components/responses/ConfluentError"
          },
          "422": {
            "$ref": "#/components/responses/ConfluentError"
          },
          "500": {
            "$ref": "#/components/responses/ConfluentError"
          }
        }
      }
    },
    "/deadletters/{topic}/replay": {
      "post": {
        "summary": "Copy dead letters back to the topic: key, value and headers (the lightmesh.dlq.* ones kept as history), plus lightmesh.dlq.replayed.from = {dead-letter topic}/{partition}/{offset}. At-least-once: the replay group is committed past a batch only once every copy in it is acknowledged, so a replay cut short (a crash, a failure, the timeout) copies a record at most once more when run again, and never skips one. The stopping point is fixed at the start (each partition's end, or until_offset). One replay per topic at a time on a sidecar.",
        "parameters": [
          {
            "name": "topic",
            "in": "path",
            "required": true,
            "description": "The original topic; its dead-letter topic is deadletters.topic ('{topic}.dlq'), or the dead_letter_topic of a subscription that reads it",
            "schema": {
              "type": "string"
            }
          }
        ],
        "requestBody": {
          "required": false,
          "content": {
            "application/json": {
              "schema": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                  "group": {
                    "type": "string",
                    "description": "Replay group (default lightmesh-replay.{topic})"
                  },
                  "max": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": 100000,
                    "default": 1000
                  },
                  "until_offset": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Only records below this offset of each dead-letter partition"
                  }
                }
              }
            }
          }
        },
        "responses": {
          "200": {
            "description": "What the replay did; complete is false when the timeout (deadletters.replay_timeout, 30 s) cut it short",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object",
                  "properties": {
                    "topic": {
                      "type": "string"
                    },
                    "dead_letter_topic": {
                      "type": "string"
                    },
                    "group": {
                      "type": "string"
                    },
                    "replayed": {
                      "type": "integer"
                    },
                    "skipped": {
                      "type": "integer",
                      "description": "Records of other topics in a shared dead-letter topic, passed over"
                    },
                    "complete": {
                      "type": "boolean"
                    },
                    "partitions": {
                      "type": "array",
                      "items": {
                        "type": "object",
                        "properties": {
                          "partition": {
                            "type": "integer"
                          },
                          "from": {
                            "type": "integer",
                            "description": "Where the job started: the replay group's committed offset, or the first offset kept"
                          },
                          "to": {
                            "type": "integer",
                            "description": "Replay only: what the replay group has committed now"
                          },
                          "end": {
                            "type": "integer",
                            "description": "Where it was to stop: the partition's end when the job started, or until_offset"
                          }
                        }
                      }
                    }
                  }
                }
              }
            }
          },
          "400": {
            "$ref": "#/components/responses/ConfluentError"
          },
          "403": {
            "$ref": "#/components/responses/ConfluentError"
          },
          "404": {
            "$ref": "#/components/responses/ConfluentError"
          },
          "405": {
            "$ref": "#/components/responses/ConfluentError"
          },
          "409": {
            "$ref": "#/components/responses/ConfluentError"
          },
          "422": {
            "$ref": "#/components/responses/ConfluentError"
          },
          "500": {
            "description": "A Kafka error: error_code 50002 or 50003 with message, and the same fields as a 200 for what was done before it",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object"
                }
              }
            }
          }
        }
      }
    }
  },
  "components": {
    "parameters": {
      "topic": {
        "name": "topic",
        "in": "path",
        "required": true,
        "schema": {
          "type": "string",
          "pattern": "^[a-zA-Z0-9._-]{1,249}$"
        }
      },
      "async": {
        "name": "async",
        "in": "query",
        "required": false,
        "description": "true: answer 204 once the records are queued, without waiting for the broker",
        "schema": {
          "type": "boolean"
        }
      },
      "traceparent": {
        "name": "traceparent",
        "in": "header",
        "required": false,
        "description": "W3C trace context, continued into one new span per request that every record carries",
        "schema": {
          "type": "string"
        }
      },
      "correlationId": {
        "name": "X-Correlation-Id",
        "in": "header",
        "required": false,
        "description": "Copied into each record's x-correlation-id header",
        "schema": {
          "type": "string"
        }
      },
      "group": {
        "name": "group",
        "in": "path",
        "required": true,
        "schema": {
          "type": "string",
          "pattern": "^[A-Za-z0-9._-]{1,249}$"
        }
      },
      "instance": {
        "name": "name",
        "in": "path",
        "required": true,
        "schema": {
          "type": "string",
          "pattern": "^[A-Za-z0-9._-]{1,249}$"
        }
      }
    },
    "requestBodies": {
      "ConfluentProduce": {
        "required": true,
        "content": {
          "application/vnd.kafka.json.v2+json": {
            "schema": {
              "$ref": "#/components/schemas/ConfluentProduceRequest"
            }
          },
          "application/vnd.kafka.binary.v2+json": {
            "schema": {
              "$ref": "#/components/schemas/ConfluentProduceRequest"
            }
          },
          "application/vnd.kafka.text.v2+json": {
            "schema": {
              "$ref": "#/components/schemas/ConfluentProduceRequest"
            }
          }
        }
      }
    },
    "responses": {
      "Error": {
        "description": "A request that cannot be taken",
        "content": {
          "application/json": {
            "schema": {
              "$ref": "#/components/schemas/Error"
            }
          }
        }
      },
      "ConfluentError": {
        "description": "Confluent error codes: 40401 unknown topic, 40402 bad partition, 40003 illegal topic name, 40601 content type, 42201 key, 42202 value, 41301 too many records, 400 malformed body",
        "content": {
          "application/vnd.kafka.v2+json": {
            "schema": {
              "$ref": "#/components/schemas/ConfluentError"
            }
          }
        }
      }
    },
    "schemas": {
      "Error": {
        "type": "object",
        "required": [
          "error"
        ],
        "properties": {
          "error": {
            "type": "object",
            "required": [
              "code",
              "message"
            ],
            "properties": {
              "code": {
                "type": "string",
                "description": "Stable: invalid_body, invalid_key, invalid_value, invalid_topic, unsupported_media_type, too_many_records, body_too_large, not_found, method_not_allowed"
              },
              "message": {
                "type": "string"
              }
            }
          }
        }
      },
      "ConfluentError": {
        "type": "object",
        "required": [
          "error_code",
          "message"
        ],
        "properties": {
          "error_code": {
            "type": "integer"
          },
          "message": {
            "type": "string"
          }
        }
      },
      "LightMeshProduceRequest": {
        "type": "object",
        "required": [
          "records"
        ],
        "properties": {
          "keyFormat": {
            "enum": [
              "string",
              "json",
              "binary"
            ],
            "default": "string"
          },
          "valueFormat": {
            "enum": [
              "string",
              "json",
              "binary"
            ],
            "default": "string"
          },
          "records": {
            "type": "array",
            "minItems": 1,
            "maxItems": 10000,
            "items": {
              "type": "object",
              "properties": {
                "key": {
                  "description": "null and \"\" are different keys (no key, empty key)"
                },
                "value": {},
                "partition": {
                  "type": "integer",
                  "minimum": 0
                },
                "headers": {
                  "type": "object",
                  "additionalProperties": {
                    "type": "string"
                  }
                },
                "traceabilityId": {
                  "type": "string"
                },
                "correlationId": {
                  "type": "string"
                }
              }
            }
          }
        }
      },
      "LightMeshProduceAnswer": {
        "type": "object",
        "required": [
          "results"
        ],
        "properties": {
          "results": {
            "type": "array",
            "items": {
              "oneOf": [
                {
                  "type": "object",
                  "required": [
                    "topic",
                    "partition",
                    "offset"
                  ],
                  "properties": {
                    "topic": {
                      "type": "string"
                    },
                    "partition": {
                      "type": "integer"
                    },
                    "offset": {
                      "type": "integer"
                    }
                  }
                },
                {
                  "type": "object",
                  "required": [
                    "error"
                  ],
                  "properties": {
                    "error": {
                      "type": "object",
                      "properties": {
                        "code": {
                          "type": "string"
                        },
                        "message": {
                          "type": "string"
                        },
                        "retriable": {
                          "type": "boolean"
                        }
                      }
                    }
                  }
                }
              ]
            }
          }
        }
      },
      "ConfluentProduceRequest": {
        "type": "object",
        "required": [
          "records"
        ],
        "properties": {
          "records": {
            "type": "array",
            "minItems": 1,
            "items": {
              "type": "object",
              "properties": {
                "key": {
                  "description": "A JSON value (json.v2) or base64 (binary.v2)"
                },
                "value": {
                  "description": "A JSON value (json.v2) or base64 (binary.v2)"
                },
                "partition": {
                  "type": "integer",
                  "minimum": 0
                },
                "timestamp": {
                  "type": "integer",
                  "description": "Strimzi: milliseconds since the epoch"
                },
                "headers": {
                  "type": "array",
                  "description": "Strimzi: values in base64",
                  "items": {
                    "type": "object",
                    "required": [
                      "key"
                    ],
                    "properties": {
                      "key": {
                        "type": "string"
                      },
                      "value": {
                        "type": "string"
                      }
                    }
                  }
                }
              }
            }
          }
        }
      },
      "ConfluentProduceAnswer": {
        "type": "object",
        "properties": {
          "offsets": {
            "type": "array",
            "items": {
              "type": "object",
              "properties": {
                "partition": {
                  "type": [
                    "integer",
                    "null"
                  ]
                },
                "offset": {
                  "type": [
                    "integer",
                    "null"
                  ]
                },
                "error_code": {
                  "type": [
                    "integer",
                    "null"
                  ]
                },
                "error": {
                  "type": [
                    "string",
                    "null"
                  ]
                }
              }
            }
          },
          "key_schema_id": {
            "type": "null"
          },
          "value_schema_id": {
            "type": "null"
          }
        }
      },
      "PushRequest": {
        "description": "What the reactive consumer POSTs to the app (with the batch's traceparent as a header)",
        "type": "object",
        "required": [
          "records"
        ],
        "properties": {
          "records": {
            "type": "array",
            "items": {
              "type": "object",
              "required": [
                "id",
                "topic",
                "partition",
                "offset",
                "timestamp",
                "attempt",
                "key",
                "value",
                "headers"
              ],
              "properties": {
                "id": {
                  "type": "string",
                  "description": "topic/partition/offset"
                },
                "topic": {
                  "type": "string"
                },
                "partition": {
                  "type": "integer"
                },
                "offset": {
                  "type": "integer"
                },
                "timestamp": {
                  "type": "integer"
                },
                "attempt": {
                  "type": "integer",
                  "minimum": 1
                },
                "key": {
                  "type": [
                    "string",
                    "null"
                  ]
                },
                "keyEncoding": {
                  "const": "base64"
                },
                "value": {
                  "description": "The value as JSON when it is one valid JSON value, else base64 with encoding"
                },
                "encoding": {
                  "const": "base64"
                },
                "headers": {
                  "type": "object",
                  "description": "Losslessly: a name maps to its value as a string when it is UTF-8, {\"base64\": ...} when it is not, null for a null value, and to a list of those, in record order, when the name repeats.",
                  "additionalProperties": {
                    "oneOf": [
                      {
                        "$ref": "#/components/schemas/PushHeaderValue"
                      },
                      {
                        "type": "array",
                        "items": {
                          "$ref": "#/components/schemas/PushHeaderValue"
                        }
                      }
                    ]
                  }
                }
              }
            }
          }
        }
      },
      "PushAnswer": {
        "description": "The app's answer: statuses by id (a missing id counts as RETRY), or the light-mesh result list (processed false = DEADLETTER). A non-2xx answer, a timeout, or an empty or malformed body retries the whole batch.",
        "oneOf": [
          {
            "type": "object",
            "required": [
              "statuses"
            ],
            "properties": {
              "statuses": {
                "type": "array",
                "items": {
                  "type": "object",
                  "required": [
                    "id",
                    "status"
                  ],
                  "properties": {
                    "id": {
                      "type": "string"
                    },
                    "status": {
                      "enum": [
                        "SUCCESS",
                        "RETRY",
                        "DEADLETTER",
                        "DROP"
                      ]
                    },
                    "reason": {
                      "type": "string"
                    }
                  }
                }
              }
            }
          },
          {
            "type": "array",
            "items": {
              "type": "object",
              "required": [
                "record",
                "processed"
              ],
              "properties": {
                "record": {
                  "type": "object",
                  "properties": {
                    "topic": {
                      "type": "string"
                    },
                    "partition": {
                      "type": "integer"
                    },
                    "offset": {
                      "type": "integer"
                    }
                  }
                },
                "processed": {
                  "type": "boolean"
                },
                "reason": {
                  "type": "string"
                }
              }
            }
          }
        ]
      },
      "DeadLetterHeaders": {
        "description": "A dead-letter copy keeps the record's key, value and headers and adds these",
        "type": "object",
        "properties": {
          "lightmesh.dlq.reason": {
            "type": "string"
          },
          "lightmesh.dlq.attempts": {
            "type": "string"
          },
          "lightmesh.dlq.original.topic": {
            "type": "string"
          },
          "lightmesh.dlq.original.partition": {
            "type": "string"
          },
          "lightmesh.dlq.original.offset": {
            "type": "string"
          },
          "lightmesh.dlq.first.failure.ms": {
            "type": "string"
          }
        }
      },
      "PushHeaderValue": {
        "oneOf": [
          {
            "type": [
              "string",
              "null"
            ]
          },
          {
            "type": "object",
            "properties": {
              "base64": {
                "type": "string"
              }
            },
            "required": [
              "base64"
            ],
            "additionalProperties": false
          }
        ]
      },
      "ConsumerCreate": {
        "type": "object",
        "properties": {
          "name": {
            "type": "string"
          },
          "id": {
            "type": "string",
            "description": "Legacy name; overrides name"
          },
          "format": {
            "type": "string",
            "enum": [
              "binary",
              "json",
              "text"
            ],
            "default": "binary"
          },
          "auto.offset.reset": {
            "type": "string",
            "enum": [
              "earliest",
              "latest"
            ],
            "default": "latest"
          },
          "auto.commit.enable": {
            "type": "string",
            "enum": [
              "true",
              "false"
            ],
            "default": "true"
          },
          "enable.auto.commit": {
            "type": [
              "boolean",
              "string"
            ],
            "description": "Strimzi's spelling"
          },
          "fetch.min.bytes": {
            "type": [
              "integer",
              "string"
            ]
          },
          "consumer.request.timeout.ms": {
            "type": [
              "integer",
              "string"
            ]
          },
          "api_flavour": {
            "type": "string",
            "enum": [
              "confluent",
              "strimzi"
            ]
          }
        }
      },
      "ConsumerCreated": {
        "type": "object",
        "required": [
          "instance_id",
          "base_uri"
        ],
        "properties": {
          "instance_id": {
            "type": "string"
          },
          "base_uri": {
            "type": "string"
          }
        }
      },
      "Subscription": {
        "type": "object",
        "properties": {
          "topics": {
            "type": "array",
            "items": {
              "type": "string"
            }
          },
          "partitions": {
            "type": "array",
            "items": {
              "type": "object",
              "additionalProperties": {
                "type": "array",
                "items": {
                  "type": "integer"
                }
              }
            }
          },
          "topic_pattern": {
            "type": "string",
            "description": "Instead of topics: a regular expression over topic names (librdkafka's, anchored at the start; the common subset of Java and POSIX: literals . * + ? [] () | ^ $; no back-references or look-around; at most 1000 bytes). Topics created later that match join the subscription; Kafka's internal topics never match. GET answers with the topics it brought to this instance."
          }
        }
      },
      "Partitions": {
        "type": "object",
        "required": [
          "partitions"
        ],
        "properties": {
          "partitions": {
            "type": "array",
            "items": {
              "type": "object",
              "required": [
                "topic",
                "partition"
              ],
              "properties": {
                "topic": {
                  "type": "string"
                },
                "partition": {
                  "type": "integer",
                  "minimum": 0
                }
              }
            }
          }
        }
      },
      "Offsets": {
        "type": "object",
        "properties": {
          "offsets": {
            "type": "array",
            "items": {
              "type": "object",
              "required": [
                "topic",
                "partition",
                "offset"
              ],
              "properties": {
                "topic": {
                  "type": "string"
                },
                "partition": {
                  "type": "integer",
                  "minimum": 0
                },
                "offset": {
                  "type": "integer",
                  "minimum": 0
                },
                "metadata": {
                  "type": "string"
                }
              }
            }
          }
        }
      },
      "ConsumedRecord": {
        "type": "object",
        "required": [
          "topic",
          "key",
          "value",
          "partition",
          "offset",
          "timestamp"
        ],
        "properties": {
          "topic": {
            "type": "string"
          },
          "key": {
            "description": "base64 (binary), the JSON value (json), or a string (text); null when absent"
          },
          "value": {
            "description": "as key"
          },
          "partition": {
            "type": "integer"
          },
          "offset": {
            "type": "integer"
          },
          "timestamp": {
            "type": "integer",
            "description": "milliseconds since the epoch"
          },
          "headers": {
            "type": "array",
            "items": {
              "type": "object",
              "properties": {
                "key": {
                  "type": "string"
                },
                "value": {
                  "type": [
                    "string",
                    "null"
                  ],
                  "description": "base64"
                }
              }
            }
          }
        }
      },
      "DeadLetterRecord": {
        "type": "object",
        "description": "A dead-lettered record; reason and the rest come from its newest lightmesh.dlq.* headers",
        "properties": {
          "partition": {
            "type": "integer"
          },
          "offset": {
            "type": "integer"
          },
          "timestamp": {
            "type": "integer"
          },
          "reason": {
            "type": [
              "string",
              "null"
            ]
          },
          "attempts": {
            "type": [
              "integer",
              "null"
            ]
          },
          "original_topic": {
            "type": [
              "string",
              "null"
            ]
          },
          "original_partition": {
            "type": [
              "integer",
              "null"
            ]
          },
          "original_offset": {
            "type": [
              "integer",
              "null"
            ]
          },
          "first_failure_ms": {
            "type": [
              "integer",
              "null"
            ]
          },
          "key": {
            "type": [
              "string",
              "null"
            ],
            "description": "base64"
          },
          "value": {
            "type": [
              "string",
              "null"
            ],
            "description": "base64"
          },
          "headers": {
            "type": "array",
            "items": {
              "type": "object",
              "properties": {
                "key": {
                  "type": "string"
                },
                "value": {
                  "type": [
                    "string",
                    "null"
                  ],
                  "description": "base64"
                }
              }
            }
          }
        }
      }
    },
    "securitySchemes": {
      "bearer": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "Only when the sidecar runs with rest.jwt or --jwks-file; otherwise no authentication."
      }
    }
  },
  "security": [
    {},
    {
      "bearer": []
    }
  ]
}
"""#
}
