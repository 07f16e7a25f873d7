mod support;

#[tokio::test]
async fn a_test_database_is_migrated_and_reachable_as_the_app_role() {
    let db = support::TestDb::new().await;
    let app = db.app().await;
    assert_eq!(
        support::scalar(&app, "select current_user").await.as_deref(),
        Some("ultracore_app")
    );
    assert_eq!(
        support::scalar(&app, "select count(*) from users")
            .await
            .as_deref(),
        Some("0")
    );
}
