#pragma once
// Everything of the SDP area: parse (session_description.hpp), attribute value parsers
// (attributes.hpp) and the relay rewriter (rewriter.hpp).

#include <evosip/sdp/attributes.hpp>
#include <evosip/sdp/rewriter.hpp>
#include <evosip/sdp/session_description.hpp>
