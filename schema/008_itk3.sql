-- 008_itk3: ITK3 messages and their acknowledgements (issue 11).
--
-- outbox: which message a row carries (message_format), the MESH headers
-- that are not its local id (mex-Subject, mex-LocalID as the Send Document
-- specification asks: the sender's ODS code), the MessageHeader id the
-- responses name, and the two ITK3 acknowledgements: infrastructure
-- (20013 success, any other code a failure) and business (30001 patient
-- known; 30002/30003/30004 put the letter in front of a person).  A missing
-- acknowledgement past its time does the same ([outbox]
-- ack_infrastructure_timeout, ack_business_working_days).
ALTER TABLE outbox
    ADD COLUMN message_format  text CHECK (message_format IN ('fhir-r4', 'gp-connect-send-document',
                                                                'toc-outpatient-letter')),
    ADD COLUMN mex_subject     text,
    ADD COLUMN mex_local_id    text,
    ADD COLUMN itk3_header_id  text,
    ADD COLUMN inf_ack_code    text,
    ADD COLUMN inf_ack_at      timestamptz,
    ADD COLUMN inf_ack_text    text,
    ADD COLUMN bus_ack_code    text,
    ADD COLUMN bus_ack_at      timestamptz,
    ADD COLUMN bus_ack_text    text,
    ADD COLUMN ack_state       text CHECK (ack_state IN ('awaiting', 'acknowledged', 'negative',
                                                          'missing'));
CREATE INDEX outbox_itk3_header ON outbox (itk3_header_id) WHERE itk3_header_id IS NOT NULL;
CREATE INDEX outbox_ack_wait ON outbox (delivered_at) WHERE ack_state = 'awaiting';

-- mesh_inbox: an ITK3 response (a *_ACK workflow) is kept until the
-- delivery stage has read it and matched it to its letter.
ALTER TABLE mesh_inbox
    ADD COLUMN payload        bytea,
    ADD COLUMN processed_at   timestamptz,
    ADD COLUMN process_error  text;
CREATE INDEX mesh_inbox_acks ON mesh_inbox (received_at) WHERE payload IS NOT NULL AND processed_at IS NULL;
