/*
 * fake_gp: a GP practice system's side of ITK3 over MESH, for the tests and
 * the demo.  It reads an ITK3 message rasd sent (the fake MESH holds it)
 * and answers as GP Connect Send Document asks of a receiver: an ITK3
 * response (event ITK008M) on the message's <workflow>_ACK workflow, whose
 * MessageHeader.response.identifier is the request's MessageHeader id, with
 * the SenderReference echoed and an OperationOutcome carrying the ITK
 * response code (ITK-ResponseCodes-1): 20013 success, another 1xxxx/2xxxx
 * code an infrastructure failure (response code fatal-error), 30001..30004
 * the business acknowledgement.
 */
#ifndef RAS_FAKE_GP_H
#define RAS_FAKE_GP_H

#include <stddef.h>

struct fake_mesh;

/* The response XML (malloc'd) to an ITK3 request; NULL if it is not one. */
char *fake_gp_response(const char *request_xml, const char *itk_code, const char *gp_mailbox);

/* Answer message i of the fake MESH (sent to a GP) with itk_code: the
 * response goes into the sender's inbox.  0, or -1 if it is not ITK3. */
int fake_gp_reply(struct fake_mesh *m, size_t i, const char *itk_code);

#endif
