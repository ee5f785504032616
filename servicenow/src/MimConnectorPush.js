/**
 * MimConnectorPush: tells the mim-connector that an incident, or one of its journal entries,
 * has changed ("ServiceNow push", docs/push.md of the connector).
 *
 * Called by the async business rules "MIM connector push: incident" and
 * "MIM connector push: journal". A notification is a hint: the connector reads the incident and
 * its journal itself, and keeps polling, so a notification that is lost costs only latency.
 *
 * Configuration (System Properties):
 *   x_mim_connector.push.enabled  "true" to send; anything else sends nothing
 *   x_mim_connector.push.url      https://<your proxy>/push/servicenow
 *   x_mim_connector.push.secret   base64 of the connector's servicenow.push_secret (password2)
 *   x_mim_connector.push.fields   the incident fields to send, comma-separated
 *
 * Each notification is a POST of a JSON body with the headers Content-Type: application/json,
 * X-MIM-Delivery: <a new GUID> and X-MIM-Signature: sha256=<base64 HMAC-SHA256(secret, body)>.
 * A journal notification names the entry (sys_id, element_id, element, sys_created_on) and never
 * carries its text. The body and the secret are never logged.
 *
 * ES5 only: global-scope scripts run in the ES5 engine.
 */
var MimConnectorPush = Class.create();

MimConnectorPush.PROPERTY_ENABLED = 'x_mim_connector.push.enabled';
MimConnectorPush.PROPERTY_URL = 'x_mim_connector.push.url';
MimConnectorPush.PROPERTY_SECRET = 'x_mim_connector.push.secret';
MimConnectorPush.PROPERTY_FIELDS = 'x_mim_connector.push.fields';
MimConnectorPush.DEFAULT_FIELDS = 'number,priority,impact,urgency,state,major_incident_state,' +
    'assignment_group,cmdb_ci,business_service,category,subcategory,short_description,opened_at,' +
    'parent_incident,sys_updated_by';
MimConnectorPush.SIGNATURE_PREFIX = 'sha256=';
/** Milliseconds to wait for the connector's answer; it only records the notification. */
MimConnectorPush.TIMEOUT_MS = 5000;
MimConnectorPush.LOG_PREFIX = 'MimConnectorPush: ';

MimConnectorPush.prototype = {
    initialize: function() {},

    /**
     * Notify the connector of an incident insert or update.
     * @param {GlideRecord} record the incident (current)
     * @param {string} operation current.operation(): "insert" or "update"; anything else is ignored
     * @returns {boolean} true when the connector accepted the notification
     */
    notifyIncident: function(record, operation) {
        var event = String(operation);
        if (event !== 'insert' && event !== 'update') {
            return false;
        }
        var config = this.getConfig();
        if (config === null) {
            return false;
        }
        return this.send(config, this.buildIncidentBody(record, event, config.fields));
    },

    /**
     * Notify the connector of a new journal entry (an incident's comment or work note).
     * @param {GlideRecord} entry the sys_journal_field record (current)
     * @returns {boolean} true when the connector accepted the notification
     */
    notifyJournal: function(entry) {
        var config = this.getConfig();
        if (config === null) {
            return false;
        }
        return this.send(config, this.buildJournalBody(entry));
    },

    /**
     * The settings to send with, or null when push is off or not configured.
     * @returns {?{url: string, secret: string, fields: string[]}}
     */
    getConfig: function() {
        if (this.property(MimConnectorPush.PROPERTY_ENABLED, 'false') !== 'true') {
            return null;
        }
        var url = this.property(MimConnectorPush.PROPERTY_URL, '');
        var secret = this.property(MimConnectorPush.PROPERTY_SECRET, '');
        if (url === '' || secret === '') {
            gs.warn(MimConnectorPush.LOG_PREFIX + 'push is enabled but ' + MimConnectorPush.PROPERTY_URL +
                ' or ' + MimConnectorPush.PROPERTY_SECRET + ' is empty; nothing sent');
            return null;
        }
        var fields = this.property(MimConnectorPush.PROPERTY_FIELDS, MimConnectorPush.DEFAULT_FIELDS);
        return {url: url, secret: secret, fields: this.parseFieldList(fields)};
    },

    /**
     * The JSON body of an incident notification: the stored values (getValue) of the listed fields.
     * @param {GlideRecord} record the incident
     * @param {string} event "insert" or "update"
     * @param {string[]} fieldNames the fields to send
     * @returns {string}
     */
    buildIncidentBody: function(record, event, fieldNames) {
        var count = parseInt(record.getValue('sys_mod_count'), 10);
        return this.toJson({
            table: 'incident',
            event: event,
            sys_id: this.stored(record, 'sys_id'),
            number: this.stored(record, 'number'),
            sys_mod_count: isNaN(count) ? 0 : count,
            sys_updated_on: this.stored(record, 'sys_updated_on'),
            fields: this.fieldValues(record, fieldNames)
        });
    },

    /**
     * The JSON body of a journal notification: which entry, on which incident; never its text.
     * @param {GlideRecord} entry the sys_journal_field record
     * @returns {string}
     */
    buildJournalBody: function(entry) {
        return this.toJson({
            table: 'sys_journal_field',
            event: 'insert',
            sys_id: this.stored(entry, 'sys_id'),
            element_id: this.stored(entry, 'element_id'),
            element: this.stored(entry, 'element'),
            sys_created_on: this.stored(entry, 'sys_created_on')
        });
    },

    /**
     * Sign the body and POST it to the connector.
     *
     * execute(), not executeAsync(): the business rules are async already, so this runs on a
     * scheduler worker and no user waits for it. execute() gives the answer back here, so a refusal
     * (401 wrong secret, 404 no endpoint) or an unreachable connector is logged where the admin
     * looks, and setHttpTimeout bounds how long a worker can be held. executeAsync() would route
     * the call through the ECC queue and its answer would be seen by no one.
     *
     * @param {{url: string, secret: string}} config
     * @param {string} body the JSON text, sent and signed byte for byte
     * @returns {boolean} true on a 2xx answer
     */
    send: function(config, body) {
        var delivery = String(gs.generateGUID());
        var mac;
        try {
            mac = String(new GlideCertificateEncryption().generateMac(config.secret, 'HmacSHA256', body));
        } catch (signError) {
            gs.warn(MimConnectorPush.LOG_PREFIX + 'delivery ' + delivery + ' not sent: it could not be signed (' +
                MimConnectorPush.PROPERTY_SECRET + ' must be base64): ' + this.describe(signError));
            return false;
        }
        try {
            var request = new sn_ws.RESTMessageV2();
            request.setEndpoint(config.url);
            request.setHttpMethod('post');
            request.setHttpTimeout(MimConnectorPush.TIMEOUT_MS);
            request.setRequestHeader('Content-Type', 'application/json');
            request.setRequestHeader('X-MIM-Delivery', delivery);
            request.setRequestHeader('X-MIM-Signature', MimConnectorPush.SIGNATURE_PREFIX + mac);
            request.setRequestBody(body);
            var response = request.execute();
            var status = parseInt(response.getStatusCode(), 10);
            if (status >= 200 && status < 300) {
                return true;
            }
            var hint = status === 401 ? ' (is ' + MimConnectorPush.PROPERTY_SECRET +
                ' the base64 of the connector\'s servicenow.push_secret?)' : '';
            var error = response.haveError() ? ': ' + response.getErrorMessage() : '';
            gs.warn(MimConnectorPush.LOG_PREFIX + 'delivery ' + delivery + ' was answered ' + status + hint + error);
        } catch (sendError) {
            gs.warn(MimConnectorPush.LOG_PREFIX + 'delivery ' + delivery + ' failed: ' + this.describe(sendError));
        }
        return false;
    },

    /**
     * The values (getValue, strings, "" when empty) of the fields named, in that order. Unknown
     * fields are left out, and so are journal fields: their text never leaves by this path.
     * @param {GlideRecord} record
     * @param {string[]} fieldNames
     * @returns {Object.<string, string>}
     */
    fieldValues: function(record, fieldNames) {
        var fields = {};
        for (var i = 0; i < fieldNames.length; i++) {
            var name = fieldNames[i];
            if (!record.isValidField(name) || this.isJournalField(record, name)) {
                continue;
            }
            fields[name] = this.stored(record, name);
        }
        return fields;
    },

    /**
     * @param {GlideRecord} record
     * @param {string} name a valid field of record
     * @returns {boolean} whether the field is a journal (comments, work notes and the like)
     */
    isJournalField: function(record, name) {
        var type = String(record.getElement(name).getED().getInternalType());
        return type.indexOf('journal') === 0;
    },

    /**
     * @param {string} text a comma-separated list
     * @returns {string[]} the names in it, trimmed, without empty ones or repeats
     */
    parseFieldList: function(text) {
        var names = [];
        var seen = {};
        var parts = String(text).split(',');
        for (var i = 0; i < parts.length; i++) {
            var name = this.trim(parts[i]);
            if (name !== '' && !seen.hasOwnProperty(name)) {
                seen[name] = true;
                names.push(name);
            }
        }
        return names;
    },

    /**
     * The stored value of a field as a string, "" when empty (as the Table API returns it with
     * sysparm_display_value=false).
     * @param {GlideRecord} record
     * @param {string} name
     * @returns {string}
     */
    stored: function(record, name) {
        var stored = record.getValue(name);
        return stored === null || stored === undefined ? '' : String(stored);
    },

    /**
     * JSON text in plain ASCII: every character above U+007E, and "$", is written as a \\uXXXX
     * escape. The same JSON value to a parser, but the signed string and the bytes on the wire
     * are then the same whatever character set either side uses, and no "${...}" can be taken for
     * a REST message variable.
     * @param {Object} data
     * @returns {string}
     */
    toJson: function(data) {
        return JSON.stringify(data).replace(/[\u007f-\uffff$]/g, function(character) {
            return '\\u' + ('0000' + character.charCodeAt(0).toString(16)).slice(-4);
        });
    },

    /**
     * @param {string} name
     * @param {string} fallback
     * @returns {string} the property's value, trimmed
     */
    property: function(name, fallback) {
        var raw = gs.getProperty(name, fallback);
        return this.trim(raw === null || raw === undefined ? '' : String(raw));
    },

    trim: function(text) {
        return String(text).replace(/^\s+|\s+$/g, '');
    },

    describe: function(error) {
        if (error && typeof error.getMessage === 'function') {
            return String(error.getMessage());
        }
        return String(error);
    },

    type: 'MimConnectorPush'
};
