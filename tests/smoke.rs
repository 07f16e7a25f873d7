mod support;

use support::sql;

#[tokio::test]
async fn a_test_database_is_migrated_and_reachable_as_the_app_role() {
    let db = support::TestDb::new().await;
    let app = db.app().await;
    assert_eq!(
        sql::scalar(&app, "select current_user").await.as_deref(),
        Some("ultracore_app")
    );
    assert_eq!(sql::count(&app, "select count(*) from users").await, 0);
}
