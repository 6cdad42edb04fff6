// librdkafka from Debian's librdkafka-dev (pkg-config: rdkafka), including the mock cluster used as
// the embedded broker.
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
